package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// IssueToken creates a management API token: for the whole instance, or restricted to a project.
type IssueToken struct {
	Name, Scope string
	Project     string // "" for an unrestricted token
	// Environments narrow an edge token to some of its project's environments (none: all).
	Environments []string
}

// IssuedToken is a new token with its secret, shown this once (only its hash is stored).
type IssuedToken struct {
	Token  *domain.APIToken
	Secret string
}

// IssueToken runs IssueToken.
func (c *Commands) IssueToken(ctx context.Context, m Meta, cmd IssueToken) (IssuedToken, error) {
	secret, hash := NewTokenSecret()
	id := NewID(8)
	if cmd.Project != "" {
		if _, _, err := c.q.Project(ctx, cmd.Project); err != nil {
			if domain.ErrorCode(err) == domain.ENotFound {
				return IssuedToken{}, domain.Invalid("project", "project %q does not exist", cmd.Project)
			}
			return IssuedToken{}, err
		}
	}
	m.Expected = Version(0)
	t, _, err := execute(ctx, c.c, domain.TokenStream(id), m, func(*domain.APIToken) ([]domain.Event, error) {
		return domain.IssueEdgeToken(id, cmd.Name, hash, cmd.Scope, cmd.Project, cmd.Environments)
	})
	if err != nil {
		return IssuedToken{}, err
	}
	return IssuedToken{Token: t, Secret: secret}, nil
}

// RegisterToken records a token whose secret the operator chose (VEXIL_ADMIN_TOKEN), under id,
// unless a token with that id exists.
type RegisterToken struct {
	ID, Name, Scope, Project string
	Hash                     string // HashToken of the secret
}

// RegisterToken runs RegisterToken; it reports whether it created the token.
func (c *Commands) RegisterToken(ctx context.Context, m Meta, cmd RegisterToken) (bool, error) {
	created := false
	_, _, err := execute(ctx, c.c, domain.TokenStream(cmd.ID), m, func(cur *domain.APIToken) ([]domain.Event, error) {
		if cur != nil {
			return nil, nil
		}
		created = true
		return domain.IssueToken(cmd.ID, cmd.Name, cmd.Hash, cmd.Scope, cmd.Project)
	})
	return created && err == nil, err
}

// RevokeToken revokes an API token; ENotFound when there is none with that id. Allow (nil: any)
// decides on the token found, before Revoke, so a token out of the caller's reach is refused
// whether or not it is already revoked.
type RevokeToken struct {
	ID    string
	Allow func(*domain.APIToken) error
}

// RevokeToken runs RevokeToken.
func (c *Commands) RevokeToken(ctx context.Context, m Meta, cmd RevokeToken) (*domain.APIToken, error) {
	t, _, err := execute(ctx, c.c, domain.TokenStream(cmd.ID), m, func(t *domain.APIToken) ([]domain.Event, error) {
		if t == nil {
			return nil, domain.Errorf(domain.ENotFound, "token %q not found", cmd.ID)
		}
		if cmd.Allow != nil {
			if err := cmd.Allow(t); err != nil {
				return nil, err
			}
		}
		return t.Revoke()
	})
	return t, err
}
