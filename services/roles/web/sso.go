package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/app/identity/oidc"
)

// SingleSignOn is the identity provider's side of a sign-in (services/app/identity/oidc).
type SingleSignOn interface {
	Begin(ctx context.Context) (oidc.Start, error)
	Finish(ctx context.Context, code, verifier, nonce string) (identity.ExternalIdentity, error)
}

// ssoCookie carries one sign-in's state, nonce and PKCE verifier from /login/sso to the
// callback: HttpOnly, SameSite=Lax (the provider's redirect back is a top-level GET), scoped to
// the callback's path, ten minutes. The state in the callback must equal the cookie's (CSRF on
// the sign-in itself), and only this browser holds the verifier the code exchange needs.
const (
	ssoCookie     = "vexil_sso"
	ssoCookiePath = "/login/sso"
	ssoLifetime   = 600 // seconds
)

func (s *Server) ssoStart(c echo.Context) error {
	if s.opts.SSO == nil {
		return s.errorPage(c, http.StatusNotFound, "Single sign-on is not configured here.")
	}
	st, err := s.opts.SSO.Begin(c.Request().Context())
	if err != nil {
		return s.fail(c, err)
	}
	v := url.Values{"state": {st.State}, "nonce": {st.Nonce}, "verifier": {st.Verifier}, "next": {safeNext(c.QueryParam("next"))}}
	c.SetCookie(&http.Cookie{Name: ssoCookie, Value: v.Encode(), Path: ssoCookiePath, HttpOnly: true, Secure: c.IsTLS(),
		SameSite: http.SameSiteLaxMode, MaxAge: ssoLifetime})
	return c.Redirect(http.StatusSeeOther, st.URL)
}

func (s *Server) ssoCallback(c echo.Context) error {
	if s.opts.SSO == nil {
		return s.errorPage(c, http.StatusNotFound, "Single sign-on is not configured here.")
	}
	ck, err := c.Cookie(ssoCookie)
	c.SetCookie(&http.Cookie{Name: ssoCookie, Value: "", Path: ssoCookiePath, HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, "This sign-in has expired or was started in another browser. Sign in again.")
	}
	v, err := url.ParseQuery(ck.Value)
	state := c.QueryParam("state")
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(v.Get("state"))) != 1 {
		return s.errorPage(c, http.StatusBadRequest, "This sign-in does not match the one this browser started. Sign in again.")
	}
	if e := c.QueryParam("error"); e != "" {
		s.log.Info("single sign-on refused by the provider", "error", e, "description", c.QueryParam("error_description"))
		return s.errorPage(c, http.StatusUnauthorized, "The identity provider did not sign you in ("+e+").")
	}
	ctx := c.Request().Context()
	id, err := s.opts.SSO.Finish(ctx, c.QueryParam("code"), v.Get("verifier"), v.Get("nonce"))
	if err != nil {
		if domain.ErrorCode(err) == domain.EUnauthorized {
			s.log.Warn("single sign-on failed", "err", err)
		}
		return s.fail(c, err)
	}
	u, err := s.people.SignInExternal(ctx, id, s.opts.GroupRoles)
	if err != nil {
		return s.fail(c, err)
	}
	secret, sess, err := s.people.StartSession(ctx, u, s.opts.Sessions, c.Request().UserAgent())
	if err != nil {
		return s.fail(c, err)
	}
	s.log.Info("signed in by single sign-on", "user", u.ID, "groups", strings.Join(id.Groups, ","))
	c.SetCookie(&http.Cookie{Name: s.cookieName(c), Value: secret, Path: "/", HttpOnly: true, Secure: c.IsTLS(),
		SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
	return c.Redirect(http.StatusSeeOther, safeNext(v.Get("next")))
}
