package console

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

type createTokenRequest struct {
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Project string `json:"project,omitempty"`
	// Environments narrows an edge token to these environments of Project.
	Environments []string `json:"environments,omitempty"`
}

// tokenView is a token as listed: never its secret or hash.
type tokenView struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Project string `json:"project,omitempty"`
	// Environments of an edge token narrowed to some (see createTokenRequest).
	Environments []string   `json:"environments,omitempty"`
	Revoked      bool       `json:"revoked"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// createdToken is answered once, at creation: the only time the secret is shown.
type createdToken struct {
	tokenView
	Token string `json:"token"`
}

// listTokens lists the tokens the caller could itself create or revoke (policy.go): all of them
// for an unrestricted admin, those of its own project for a restricted one.
func (s *Server) listTokens(c echo.Context) error {
	caller := principal(c)
	rows, err := s.app.pool.Query(c.Request().Context(),
		`SELECT id, name, scope, project, environments, revoked, created_at, revoked_at FROM rm_api_tokens ORDER BY created_at, id`)
	if err != nil {
		return fmt.Errorf("console: list tokens: %w", err)
	}
	defer rows.Close()
	var out []tokenView
	for rows.Next() {
		var t tokenView
		if err := rows.Scan(&t.ID, &t.Name, &t.Scope, &t.Project, &t.Environments, &t.Revoked, &t.CreatedAt, &t.RevokedAt); err != nil {
			return fmt.Errorf("console: scan token: %w", err)
		}
		if sees(caller, t.Project, t.Scope) {
			out = append(out, t)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("console: list tokens: %w", err)
	}
	return c.JSON(http.StatusOK, newPage(out, ""))
}

// IssueToken creates an API token and returns its secret (shown once) and id. environments
// narrow an edge token (domain.IssueEdgeToken).
func (a *App) IssueToken(ctx context.Context, meta domain.Metadata, name, scope, project string, environments ...string) (secret, id string, t *domain.APIToken, err error) {
	secret, hash := NewTokenSecret()
	id = NewID(8)
	if project != "" {
		if _, err := a.LoadProject(ctx, project); err != nil {
			if domain.ErrorCode(err) == domain.ENotFound {
				return "", "", nil, domain.Invalid("project", "project %q does not exist", project)
			}
			return "", "", nil, err
		}
	}
	agg, _, err := a.Execute(ctx, domain.TokenStream(id), 0, meta, func(projections.Aggregate) ([]domain.Event, error) {
		return domain.IssueEdgeToken(id, name, hash, scope, project, environments)
	})
	if err != nil {
		return "", "", nil, err
	}
	return secret, id, agg.(*domain.APIToken), nil
}

func (s *Server) createToken(c echo.Context) error {
	var req createTokenRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	// No token makes one beyond itself: a restricted token only for its project, and no scope it
	// does not hold. An unknown scope is left to the domain, which answers 400 naming the field.
	if domain.ValidScope(req.Scope) {
		what := fmt.Sprintf("creating an unrestricted token of scope %q", req.Scope)
		if req.Project != "" {
			what = fmt.Sprintf("creating a token of scope %q for project %q", req.Scope, req.Project)
		}
		if err := permit(principal(c), req.Project, req.Scope, what); err != nil {
			return err
		}
	}
	secret, _, t, err := s.app.IssueToken(c.Request().Context(), meta(c), req.Name, req.Scope, req.Project, req.Environments...)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, createdToken{tokenView: viewToken(t), Token: secret})
}

func viewToken(t *domain.APIToken) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Scope: t.Scope, Project: t.Project, Environments: t.Environments,
		Revoked: t.Revoked, CreatedAt: t.CreatedAt}
	if t.Revoked {
		at := t.RevokedAt
		v.RevokedAt = &at
	}
	return v
}

func (s *Server) revokeToken(c echo.Context) error {
	id := c.Param("id")
	t, err := s.app.RevokeToken(c.Request().Context(), meta(c), id, func(target *domain.APIToken) error {
		return permit(principal(c), target.Project, target.Scope, fmt.Sprintf("revoking token %q", id))
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewToken(t))
}

// RevokeToken revokes an API token; ENotFound when there is none with that id. allow (nil: any)
// decides on the token found, before Revoke, so a token out of the caller's reach is refused
// whether or not it is already revoked.
func (a *App) RevokeToken(ctx context.Context, meta domain.Metadata, id string, allow func(*domain.APIToken) error) (*domain.APIToken, error) {
	agg, _, err := a.Execute(ctx, domain.TokenStream(id), AnyVersion, meta, func(cur projections.Aggregate) ([]domain.Event, error) {
		if cur == nil {
			return nil, domain.Errorf(domain.ENotFound, "token %q not found", id)
		}
		target := cur.(*domain.APIToken)
		if allow != nil {
			if err := allow(target); err != nil {
				return nil, err
			}
		}
		return target.Revoke()
	})
	if err != nil {
		return nil, err
	}
	return agg.(*domain.APIToken), nil
}
