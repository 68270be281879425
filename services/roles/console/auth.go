package console

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/app"
)

const principalKey = "vexil.principal"

// principal returns the token that authenticated the request.
func principal(c echo.Context) access.Token {
	t, _ := c.Get(principalKey).(access.Token)
	return t
}

// actor names the authenticated token in event metadata.
func actor(c echo.Context) string { return "token:" + principal(c).ID }

// authenticate resolves the bearer token of every /api/v1 request (but the OpenAPI document).
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			return domain.Errorf(domain.EUnauthorized, "an API token is required: Authorization: Bearer <token>")
		}
		tok, err := access.LookupToken(c.Request().Context(), s.app.Queries.Pool(), app.HashToken(strings.TrimSpace(secret)))
		if domain.ErrorCode(err) == domain.ENotFound {
			return domain.Errorf(domain.EUnauthorized, "unknown API token")
		}
		if err != nil {
			return err
		}
		if tok.Revoked {
			return domain.Errorf(domain.EUnauthorized, "this API token has been revoked")
		}
		c.Set(principalKey, tok)
		return next(c)
	}
}
