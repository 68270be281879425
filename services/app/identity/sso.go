package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vexil-flags/vexil/domain"
)

// ExternalIdentity is a person as an identity provider vouches for them after single sign-on
// (services/app/identity/oidc): the provider's issuer and subject are their stable id.
type ExternalIdentity struct {
	Issuer, Subject string
	Email           string
	EmailVerified   bool
	Name            string
	Groups          []string
}

// GroupRole gives the members of an identity provider's group a role in a project; Project "*"
// with RoleAdmin makes them instance admins.
type GroupRole struct {
	Group, Project, Role string
}

// AllProjects in a GroupRole stands for every project (instance admin; admin role only).
const AllProjects = "*"

// ParseGroupRoles reads the group mapping of VEXIL_OIDC_GROUP_ROLES: a comma list of
// group:project=role, e.g. "eng:shop=editor,eng:blog=viewer,admins:*=admin". The group is
// everything before the last colon (group names such as "acme:platform-team" keep theirs);
// a project is a project key, or * with the admin role for instance admins.
func ParseGroupRoles(s string) ([]GroupRole, error) {
	var out []GroupRole
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		left, role, ok := strings.Cut(item, "=")
		i := strings.LastIndex(left, ":")
		if !ok || i <= 0 || i == len(left)-1 {
			return nil, fmt.Errorf("group role %q: want group:project=role, e.g. eng:shop=editor", item)
		}
		g := GroupRole{Group: strings.TrimSpace(left[:i]), Project: strings.TrimSpace(left[i+1:]), Role: strings.TrimSpace(role)}
		if ScopeOf(g.Role) == "" {
			return nil, fmt.Errorf("group role %q: role must be viewer, editor or admin", item)
		}
		if g.Project == AllProjects && g.Role != RoleAdmin {
			return nil, fmt.Errorf("group role %q: * (every project) is for admin only: instance admins", item)
		}
		if g.Group == "" || g.Project == "" {
			return nil, fmt.Errorf("group role %q: want group:project=role", item)
		}
		out = append(out, g)
	}
	return out, nil
}

// RolesOf is what a person's groups give: the strongest role per project, and whether they
// are an instance admin.
func RolesOf(groups []string, mapping []GroupRole) (map[string]string, bool) {
	roles := map[string]string{}
	admin := false
	for _, m := range mapping {
		if !slices.Contains(groups, m.Group) {
			continue
		}
		if m.Project == AllProjects {
			admin = true
			continue
		}
		if slices.Index(Roles, m.Role) > slices.Index(Roles, roles[m.Project]) {
			roles[m.Project] = m.Role
		}
	}
	return roles, admin
}

// SignInExternal finds or creates the person an identity provider signed in, and sets their
// roles from their groups:
//   - found by (issuer, subject); else an account with the same email is linked, only when the
//     provider says the email is verified (otherwise anyone who can name an address at the
//     provider could take over the account); else a new account without a password.
//   - roles the mapping gives are written marked as such; roles it gave earlier and no longer
//     gives are taken back; roles an admin gave by hand are left alone (and not overwritten).
//   - a person who came by single sign-on is an instance admin exactly when the mapping says so;
//     a linked local instance admin stays one.
//
// A disabled account is refused (EUnauthorized).
func (s *Store) SignInExternal(ctx context.Context, id ExternalIdentity, mapping []GroupRole) (User, error) {
	if id.Issuer == "" || id.Subject == "" {
		return User{}, domain.Errorf(domain.EUnauthorized, "the identity provider named no subject")
	}
	roles, admin := RolesOf(id.Groups, mapping)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return User{}, fmt.Errorf("identity: sign in %s: %w", id.Subject, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM console_users WHERE oidc_issuer = $1 AND oidc_subject = $2 FOR UPDATE`, id.Issuer, id.Subject))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		u, err = s.linkOrCreate(ctx, tx, id, admin)
		if err != nil {
			return User{}, err
		}
	case err != nil:
		return User{}, fmt.Errorf("identity: sign in %s: %w", id.Subject, err)
	default:
		// The provider is the source of the person's name and admin status from now on.
		if _, err := tx.Exec(ctx, `UPDATE console_users SET instance_admin = $2,
				display_name = CASE WHEN $3 = '' THEN display_name ELSE $3 END WHERE id = $1`, u.ID, admin, displayName(id)); err != nil {
			return User{}, fmt.Errorf("identity: sign in %s: %w", u.ID, err)
		}
		u.InstanceAdmin = admin
	}
	if u.Disabled {
		return User{}, domain.Errorf(domain.EUnauthorized, "this account is disabled")
	}
	if _, err := tx.Exec(ctx, `DELETE FROM console_members WHERE user_id = $1 AND from_oidc AND NOT (project = ANY ($2))`,
		u.ID, keysOf(roles)); err != nil {
		return User{}, fmt.Errorf("identity: roles of %s: %w", u.ID, err)
	}
	for project, role := range roles {
		if _, err := tx.Exec(ctx, `INSERT INTO console_members (user_id, project, role, created_by, from_oidc) VALUES ($1, $2, $3, $4, true)
			ON CONFLICT (user_id, project) DO UPDATE SET role = EXCLUDED.role WHERE console_members.from_oidc`,
			u.ID, project, role, "system:oidc"); err != nil {
			return User{}, fmt.Errorf("identity: role of %s in %s: %w", u.ID, project, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return User{}, fmt.Errorf("identity: sign in %s: %w", u.ID, err)
	}
	return u, nil
}

func (s *Store) linkOrCreate(ctx context.Context, tx pgx.Tx, id ExternalIdentity, admin bool) (User, error) {
	if id.Email != "" && id.EmailVerified {
		u, err := scanUser(tx.QueryRow(ctx, `UPDATE console_users SET oidc_issuer = $2, oidc_subject = $3, instance_admin = instance_admin OR $4
			WHERE lower(email) = lower($1) AND oidc_subject IS NULL RETURNING `+userColumns, id.Email, id.Issuer, id.Subject, admin))
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return User{}, fmt.Errorf("identity: link %s: %w", id.Email, err)
		}
	}
	email := id.Email
	if email == "" {
		return User{}, domain.Errorf(domain.EUnauthorized, "the identity provider gave no email address (ask for the email scope)")
	}
	u := User{ID: "u_" + randomHex(8), Email: email, DisplayName: displayName(id), InstanceAdmin: admin}
	if u.DisplayName == "" {
		u.DisplayName = email
	}
	// An empty password hash matches no password: bcrypt refuses to compare with it.
	err := tx.QueryRow(ctx, `INSERT INTO console_users (id, email, display_name, password_hash, instance_admin, created_by, oidc_issuer, oidc_subject)
		VALUES ($1, $2, $3, '', $4, 'system:oidc', $5, $6) RETURNING created_at`,
		u.ID, u.Email, u.DisplayName, u.InstanceAdmin, id.Issuer, id.Subject).Scan(&u.CreatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return User{}, domain.Errorf(domain.EConflict, "an account with email %s exists already and the identity provider did not verify that address: ask an admin", email)
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: create %s: %w", email, err)
	}
	return u, nil
}

func displayName(id ExternalIdentity) string {
	name := strings.TrimSpace(id.Name)
	if r := []rune(name); len(r) > 100 {
		name = string(r[:100])
	}
	return name
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
