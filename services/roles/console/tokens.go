package console

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

type createTokenRequest struct {
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Project string `json:"project,omitempty"`
	// Environments narrows an edge token to these environments of Project.
	Environments []string `json:"environments,omitempty"`
}

// tokenView is a token as listed: never its secret or hash.
type tokenView app.TokenSummary

// createdToken is answered once, at creation: the only time the secret is shown.
type createdToken struct {
	tokenView
	Token string `json:"token"`
}

// listTokens lists the tokens the caller could itself create or revoke (policy.go): all of them
// for an unrestricted admin, those of its own project for a restricted one.
func (s *Server) listTokens(c echo.Context) error {
	caller := principal(c)
	all, err := s.app.Queries.ListTokens(c.Request().Context())
	if err != nil {
		return err
	}
	var out []tokenView
	for _, t := range all {
		if sees(caller, t.Project, t.Scope) {
			out = append(out, tokenView(t))
		}
	}
	return c.JSON(http.StatusOK, newPage(out, ""))
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
	issued, err := s.app.Commands.IssueToken(c.Request().Context(), meta(c), app.IssueToken{Name: req.Name, Scope: req.Scope,
		Project: req.Project, Environments: req.Environments})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, createdToken{tokenView: tokenView(app.SummarizeToken(issued.Token)), Token: issued.Secret})
}

func (s *Server) revokeToken(c echo.Context) error {
	id := c.Param("id")
	t, err := s.app.Commands.RevokeToken(c.Request().Context(), meta(c), app.RevokeToken{ID: id,
		Allow: func(target *domain.APIToken) error {
			return permit(principal(c), target.Project, target.Scope, fmt.Sprintf("revoking token %q", id))
		}})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenView(app.SummarizeToken(t)))
}
