// Package identity holds the people of the web console: user accounts (bcrypt password hashes),
// their roles per project, and server-side sessions, all in PostgreSQL (migration 0080).
//
// A role maps onto an API token scope (viewer = read, editor = write, admin = admin), so the
// console asks the same question the management API asks a token: does this principal reach this
// project with this scope? An instance admin is admin in every project.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/vexil-flags/vexil/domain"
)

// Roles of a person in a project.
const (
	RoleViewer = "viewer"
	RoleEditor = "editor"
	RoleAdmin  = "admin"
)

// Roles lists the roles from least to most powerful.
var Roles = []string{RoleViewer, RoleEditor, RoleAdmin}

// ScopeOf is the API token scope a role carries.
func ScopeOf(role string) string {
	switch role {
	case RoleAdmin:
		return domain.ScopeAdmin
	case RoleEditor:
		return domain.ScopeWrite
	case RoleViewer:
		return domain.ScopeRead
	}
	return ""
}

// MinPasswordLength is the shortest password accepted (NIST SP 800-63B asks for at least 8).
const MinPasswordLength = 10

// bcryptCost is bcrypt's work factor: about 50-80 ms a sign-in on this machine's cores, which
// with the login rate limit makes guessing slow without making sign-in feel slow.
const bcryptCost = 11

// User is a person who signs in to the console.
type User struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	DisplayName   string    `json:"display_name"`
	InstanceAdmin bool      `json:"instance_admin"`
	Disabled      bool      `json:"disabled"`
	CreatedAt     time.Time `json:"created_at"`
}

// Actor is how the person is named in event metadata and the audit log.
func (u User) Actor() string { return ActorPrefix + u.ID }

// ActorPrefix starts the actor of every change a person makes in the console.
const ActorPrefix = "user:"

// Store reads and writes people, members and sessions.
type Store struct {
	pool *pgxpool.Pool
	// dummy is a bcrypt hash compared against when an email is unknown, so a sign-in takes as
	// long for an unknown email as for a wrong password (no account enumeration by timing).
	dummy []byte
}

// NewStore builds the store over pool.
func NewStore(pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("identity: NewStore needs a pool")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("identity: dummy hash: %w", err)
	}
	return &Store{pool: pool, dummy: dummy}, nil
}

// NewUser is what CreateUser needs.
type NewUser struct {
	Email, DisplayName, Password string
	InstanceAdmin                bool
	CreatedBy                    string // the actor creating the account
}

func validate(n NewUser) error {
	addr, err := mail.ParseAddress(n.Email)
	if err != nil || addr.Address != n.Email || len(n.Email) > 254 {
		return domain.Invalid("email", "email must be an address like ada@example.com")
	}
	name := strings.TrimSpace(n.DisplayName)
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return domain.Invalid("display_name", "display name must be 1 to 100 characters")
	}
	if utf8.RuneCountInString(n.Password) < MinPasswordLength {
		return domain.Invalid("password", "password must be at least %d characters", MinPasswordLength)
	}
	if len(n.Password) > 72 {
		// bcrypt reads 72 bytes; a longer password would silently accept any longer suffix.
		return domain.Invalid("password", "password must be at most 72 bytes")
	}
	return nil
}

// CreateUser adds an account. A taken email is EConflict; bad input is EInvalid with the field.
func (s *Store) CreateUser(ctx context.Context, n NewUser) (User, error) {
	if err := validate(n); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(n.Password), bcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("identity: hash password: %w", err)
	}
	u := User{ID: "u_" + randomHex(8), Email: n.Email, DisplayName: strings.TrimSpace(n.DisplayName), InstanceAdmin: n.InstanceAdmin}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO console_users (id, email, display_name, password_hash, instance_admin, created_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`, u.ID, u.Email, u.DisplayName, string(hash), u.InstanceAdmin, n.CreatedBy).Scan(&u.CreatedAt)
		if err != nil {
			return err
		}
		after := u.Email + " (" + u.DisplayName + ")"
		if u.InstanceAdmin {
			after += ", instance admin"
		}
		return record(ctx, tx, AccountEntry{Actor: n.CreatedBy, Action: ActionUserCreated, Subject: u.Actor(), After: after})
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return User{}, &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf("a person with email %q exists already", n.Email), Field: "email"}
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: create user %s: %w", n.Email, err)
	}
	return u, nil
}

// AnyInstanceAdmin reports whether some enabled instance admin exists (the first-run check).
func (s *Store) AnyInstanceAdmin(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM console_users WHERE instance_admin AND NOT disabled)`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("identity: any instance admin: %w", err)
	}
	return ok, nil
}

const userColumns = `id, email, display_name, instance_admin, disabled, created_at`

func scanUser(row pgx.Row, extra ...any) (User, error) {
	var u User
	err := row.Scan(append([]any{&u.ID, &u.Email, &u.DisplayName, &u.InstanceAdmin, &u.Disabled, &u.CreatedAt}, extra...)...)
	return u, err
}

// Authenticate checks an email and password. Any failure is the same EUnauthorized, whether the
// email is unknown, the password wrong or the account disabled.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	var hash string
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM console_users WHERE lower(email) = lower($1)`, email), &hash)
	refused := domain.Errorf(domain.EUnauthorized, "unknown email or wrong password")
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return User{}, refused
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || u.Disabled {
		return User{}, refused
	}
	return u, nil
}

// Users lists every account by email.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM console_users ORDER BY lower(email)`)
	if err != nil {
		return nil, fmt.Errorf("identity: users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("identity: users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UserByEmail finds an account; ENotFound when there is none.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM console_users WHERE lower(email) = lower($1)`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("no person with email %q", email), Field: "email"}
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: user %s: %w", email, err)
	}
	return u, nil
}

// DisplayNames maps user ids to display names, for naming actors in the audit log.
func (s *Store) DisplayNames(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, display_name FROM console_users`)
	if err != nil {
		return nil, fmt.Errorf("identity: display names: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("identity: display names: %w", err)
		}
		out[id] = name
	}
	return out, rows.Err()
}

// Member is a person's role in a project.
type Member struct {
	User User   `json:"user"`
	Role string `json:"role"`
}

// SetRole gives a person a role in a project (replacing any other); "" removes them. The change
// is recorded in the account audit, in the same transaction, attributed to by.
func (s *Store) SetRole(ctx context.Context, userID, project, role, by string) error {
	if role != "" && ScopeOf(role) == "" {
		return domain.Invalid("role", "role must be viewer, editor or admin, not %q", role)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT role FROM console_members WHERE user_id = $1 AND project = $2 FOR UPDATE`, userID, project).Scan(&before)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if before == role {
			return nil // nothing changes, nothing to record
		}
		entry := AccountEntry{Actor: by, Project: project, Subject: ActorPrefix + userID, Before: before, After: role}
		switch {
		case role == "":
			entry.Action = ActionMemberRemoved
			_, err = tx.Exec(ctx, `DELETE FROM console_members WHERE user_id = $1 AND project = $2`, userID, project)
		default:
			entry.Action = ActionMemberRoleChange
			if before == "" {
				entry.Action = ActionMemberAdded
			}
			_, err = tx.Exec(ctx, `INSERT INTO console_members (user_id, project, role, created_by) VALUES ($1, $2, $3, $4)
				ON CONFLICT (user_id, project) DO UPDATE SET role = EXCLUDED.role, created_by = EXCLUDED.created_by, created_at = now()`,
				userID, project, role, by)
		}
		if err != nil {
			return err
		}
		return record(ctx, tx, entry)
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" {
		return domain.Errorf(domain.ENotFound, "no person with id %q", userID)
	}
	if err != nil {
		return fmt.Errorf("identity: set role of %s in %s: %w", userID, project, err)
	}
	return nil
}

// Members lists a project's members by email.
func (s *Store) Members(ctx context.Context, project string) ([]Member, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.id, u.email, u.display_name, u.instance_admin, u.disabled, u.created_at, m.role
		FROM console_members m JOIN console_users u ON u.id = m.user_id WHERE m.project = $1 ORDER BY lower(u.email)`, project)
	if err != nil {
		return nil, fmt.Errorf("identity: members of %s: %w", project, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if m.User, err = scanUser(rows, &m.Role); err != nil {
			return nil, fmt.Errorf("identity: members of %s: %w", project, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Role is a person's role in a project: admin for an instance admin, "" for none.
func (s *Store) Role(ctx context.Context, u User, project string) (string, error) {
	if u.InstanceAdmin {
		return RoleAdmin, nil
	}
	var role string
	err := s.pool.QueryRow(ctx, `SELECT role FROM console_members WHERE user_id = $1 AND project = $2`, u.ID, project).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("identity: role of %s in %s: %w", u.ID, project, err)
	}
	return role, nil
}

// Projects lists the projects a person is a member of, with the role in each.
func (s *Store) Projects(ctx context.Context, u User) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT project, role FROM console_members WHERE user_id = $1`, u.ID)
	if err != nil {
		return nil, fmt.Errorf("identity: projects of %s: %w", u.ID, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var p, r string
		if err := rows.Scan(&p, &r); err != nil {
			return nil, fmt.Errorf("identity: projects of %s: %w", u.ID, err)
		}
		out[p] = r
	}
	return out, rows.Err()
}

// SessionPolicy bounds sessions: Idle ends a session unused that long, Absolute ends any session
// that long after sign-in, whatever its use (OWASP's session management guidance).
type SessionPolicy struct {
	Idle, Absolute time.Duration
}

// DefaultSessionPolicy: half an hour idle, twelve hours in all (a working day).
var DefaultSessionPolicy = SessionPolicy{Idle: 30 * time.Minute, Absolute: 12 * time.Hour}

// Session is a signed-in person.
type Session struct {
	User User
	// CSRF is the session's anti-forgery token: every form and htmx request carries it.
	CSRF      string
	ExpiresAt time.Time
	idHash    string
}

// StartSession signs a person in and returns the cookie's secret.
func (s *Store) StartSession(ctx context.Context, u User, policy SessionPolicy, userAgent string) (string, Session, error) {
	secret := randomToken()
	sess := Session{User: u, CSRF: randomToken(), idHash: hashOf(secret)}
	if len(userAgent) > 300 || !utf8.ValidString(userAgent) {
		userAgent = strings.ToValidUTF8(userAgent[:min(len(userAgent), 300)], "")
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO console_sessions (id_hash, user_id, csrf_token, expires_at, user_agent)
		VALUES ($1, $2, $3, now() + $4::interval, $5) RETURNING expires_at`,
		sess.idHash, u.ID, sess.CSRF, fmt.Sprintf("%d milliseconds", policy.Absolute.Milliseconds()), strings.ReplaceAll(userAgent, "\x00", "")).Scan(&sess.ExpiresAt)
	if err != nil {
		return "", Session{}, fmt.Errorf("identity: start session for %s: %w", u.ID, err)
	}
	return secret, sess, nil
}

// touchEvery is how stale last_seen_at may get before a request writes it again: one write a
// minute per session instead of one per request; idle expiry is that much coarser.
const touchEvery = time.Minute

// LookupSession resolves a cookie's secret to a live session, touching its last use. A missing,
// revoked, idle or expired session is EUnauthorized.
func (s *Store) LookupSession(ctx context.Context, secret string, policy SessionPolicy) (Session, error) {
	if secret == "" {
		return Session{}, domain.Errorf(domain.EUnauthorized, "not signed in")
	}
	var sess Session
	var lastSeen time.Time
	var idle bool
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT u.id, u.email, u.display_name, u.instance_admin, u.disabled, u.created_at,
			s.csrf_token, s.expires_at, s.last_seen_at, s.last_seen_at < now() - $2::interval
		FROM console_sessions s JOIN console_users u ON u.id = s.user_id
		WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()`,
		hashOf(secret), fmt.Sprintf("%d milliseconds", policy.Idle.Milliseconds())), &sess.CSRF, &sess.ExpiresAt, &lastSeen, &idle)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (idle || u.Disabled)) {
		return Session{}, domain.Errorf(domain.EUnauthorized, "the session has ended; sign in again")
	}
	if err != nil {
		return Session{}, fmt.Errorf("identity: look up session: %w", err)
	}
	sess.User, sess.idHash = u, hashOf(secret)
	if time.Since(lastSeen) > touchEvery {
		if _, err := s.pool.Exec(ctx, `UPDATE console_sessions SET last_seen_at = now() WHERE id_hash = $1`, sess.idHash); err != nil {
			return Session{}, fmt.Errorf("identity: touch session: %w", err)
		}
	}
	return sess, nil
}

// EndSession signs out: the session is revoked at once, on every replica.
func (s *Store) EndSession(ctx context.Context, secret string) error {
	_, err := s.pool.Exec(ctx, `UPDATE console_sessions SET revoked_at = now() WHERE id_hash = $1 AND revoked_at IS NULL`, hashOf(secret))
	if err != nil {
		return fmt.Errorf("identity: end session: %w", err)
	}
	return nil
}

// RevokeSessions ends every session of a person (a lost laptop, a person leaving), recorded in
// the account audit as done by by.
func (s *Store) RevokeSessions(ctx context.Context, userID, by string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return record(ctx, tx, AccountEntry{Actor: by, Action: ActionSessionsRevoked, Subject: ActorPrefix + userID, After: fmt.Sprintf("%d sessions", n)})
	})
	if err != nil {
		return 0, fmt.Errorf("identity: revoke sessions of %s: %w", userID, err)
	}
	return n, nil
}

// CheckCSRF compares a submitted anti-forgery token with the session's in constant time.
func (sess Session) CheckCSRF(submitted string) bool {
	return submitted != "" && subtle.ConstantTimeCompare([]byte(submitted), []byte(sess.CSRF)) == 1
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
