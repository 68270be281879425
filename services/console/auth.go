package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
)

// TokenPrefix starts every management API token, so secret scanners can recognise leaked ones.
const TokenPrefix = "vxl_"

// NewTokenSecret returns a fresh API token secret and the hash that is stored instead of it.
func NewTokenSecret() (secret, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand failed: " + err.Error()) // the OS has no entropy: nothing is safe
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// HashToken is the stored form of a token secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewID returns a random identifier for tokens and SDK keys.
func NewID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("console: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// NewSDKKey returns a fresh SDK key of kind client or server.
func NewSDKKey(kind string) string {
	return kind + "-" + NewID(16)
}

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
		tok, err := access.LookupToken(c.Request().Context(), s.app.pool, HashToken(strings.TrimSpace(secret)))
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
