// Package web is the web console: server-rendered pages (html/template) with htmx for partial
// updates, served by the console role at / on the API's port. Templates, CSS, the console's own
// script and the vendored htmx are embedded (go:embed), so the binary needs no build step and the
// pages request nothing from any host but Vexil.
//
// People sign in with an email and a password (services/app/identity); a session cookie carries a
// random secret whose hash is the session's row. Every state-changing request must carry the
// session's CSRF token (a form field, or the X-CSRF-Token header htmx sends). Commands and queries
// go through Commands (commands.go), and every change is attributed to the person in the event's
// metadata (actor "user:<id>") with the reason typed in the form.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

//go:embed static
var staticFS embed.FS

// SessionCookie names the session cookie. With TLS it is __Host- prefixed, which browsers only
// accept Secure, on path /, without a Domain: no subdomain can plant or read it.
const (
	SessionCookie       = "vexil_session"
	secureSessionCookie = "__Host-vexil_session"
	csrfField           = "_csrf"
	csrfHeader          = "X-CSRF-Token"
	reasonField         = "reason"
)

// Options configure the console.
type Options struct {
	Sessions identity.SessionPolicy
	// LoginAttempts at once, then one per LoginInterval, per email and per client address,
	// counted in PostgreSQL so that every replica shares the budget.
	LoginAttempts int
	LoginInterval time.Duration
	// Now is the clock (tests may fix it); nil is time.Now.
	Now func() time.Time
	// SSO signs people in through an identity provider (sso.go); nil: no single sign-on.
	SSO SingleSignOn
	// GroupRoles maps the provider's groups to project roles (VEXIL_OIDC_GROUP_ROLES).
	GroupRoles []identity.GroupRole
	// NoLocalPasswords refuses sign-in with a password (VEXIL_LOCAL_PASSWORDS=off): people sign
	// in through SSO only.
	NoLocalPasswords bool
	// Webhooks are the outgoing webhook subscriptions (webhooks.go); nil: no webhooks page.
	Webhooks *webhooks.Store
	// WakeWebhooks tells this process's delivery worker that a test delivery is queued.
	WakeWebhooks func()
}

// DefaultOptions: the default session policy; 5 attempts at once, then one every 12 s, per email
// and per client address (VEXIL_SESSION_IDLE_TIMEOUT, VEXIL_SESSION_MAX_AGE, VEXIL_LOGIN_ATTEMPTS
// and VEXIL_LOGIN_INTERVAL set them in a deployment).
var DefaultOptions = Options{Sessions: identity.DefaultSessionPolicy, LoginAttempts: 5, LoginInterval: 12 * time.Second}

// Server serves the console's pages.
type Server struct {
	cmds   Commands
	people *identity.Store
	log    *slog.Logger
	opts   Options
	logins *identity.LoginLimiter
	pages  *pages
}

// NewServer builds the console over cmds and people.
func NewServer(cmds Commands, people *identity.Store, log *slog.Logger, opts Options) (*Server, error) {
	if cmds == nil || people == nil || log == nil {
		return nil, errors.New("web: NewServer needs commands, the people store and a logger")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sessions.Idle <= 0 || opts.Sessions.Absolute <= 0 {
		opts.Sessions = identity.DefaultSessionPolicy
	}
	if opts.LoginAttempts <= 0 || opts.LoginInterval <= 0 {
		opts.LoginAttempts, opts.LoginInterval = DefaultOptions.LoginAttempts, DefaultOptions.LoginInterval
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Server{cmds: cmds, people: people, log: log, opts: opts,
		logins: people.NewLoginLimiter(opts.LoginAttempts, opts.LoginInterval), pages: p}, nil
}

// Register adds the console's routes to e. /api, /sdk, /ofrep and the operational endpoints
// belong to other roles and are never shadowed: every console route is a fixed prefix.
func (s *Server) Register(e *echo.Echo) {
	static, _ := fs.Sub(staticFS, "static")
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", staticHandler(static))))
	e.GET("/", s.home, s.headers, s.optionalSession)
	e.GET("/login", s.loginPage, s.headers, s.optionalSession)
	e.POST("/login", s.login, s.headers)
	e.GET("/login/sso", s.ssoStart, s.headers)
	e.GET("/login/sso/callback", s.ssoCallback, s.headers)
	e.POST("/logout", s.logout, s.headers, s.session, s.csrf)
	e.GET("/setup", s.setupPage, s.headers)
	e.POST("/setup", s.setup, s.headers)
	e.GET("/account", s.accountPage, s.headers, s.session, s.csrf)
	e.POST("/account/password", s.changePassword, s.headers, s.session, s.csrf)

	g := e.Group("/projects", s.headers, s.session, s.csrf)
	g.GET("", s.projectsPage)
	g.GET("/:project", s.projectHome, s.member(identity.RoleViewer))
	g.GET("/:project/flags", s.flagsPage, s.member(identity.RoleViewer))
	g.GET("/:project/flags/new", s.newFlagPage, s.member(identity.RoleEditor))
	g.POST("/:project/flags", s.createFlag, s.member(identity.RoleEditor))
	g.GET("/:project/flags/:flag", s.flagPage, s.member(identity.RoleViewer))
	g.POST("/:project/flags/:flag", s.updateFlag, s.member(identity.RoleEditor))
	g.POST("/:project/flags/:flag/variations", s.updateVariations, s.member(identity.RoleEditor))
	g.GET("/:project/flags/:flag/live", s.flagLive, s.member(identity.RoleViewer))
	g.POST("/:project/flags/:flag/environments/:environment/toggle", s.toggle, s.member(identity.RoleEditor))
	g.GET("/:project/flags/:flag/environments/:environment", s.targetingPage, s.member(identity.RoleViewer))
	g.POST("/:project/flags/:flag/environments/:environment", s.saveTargeting, s.member(identity.RoleEditor))
	g.GET("/:project/flags/:flag/history", s.historyPage, s.member(identity.RoleViewer))
	g.GET("/:project/flags/:flag/evaluate", s.evaluatePage, s.member(identity.RoleViewer))
	g.POST("/:project/flags/:flag/history/restore", s.restore, s.member(identity.RoleEditor))
	g.GET("/:project/segments", s.segmentsPage, s.member(identity.RoleViewer))
	g.GET("/:project/audit", s.auditPage, s.member(identity.RoleViewer))
	g.GET("/:project/audit/export", s.auditExport, s.member(identity.RoleViewer))
	s.registerAnalytics(g) // insights, stale flags, goals, experiments (insights.go)
	s.registerDelivery(g)
	g.GET("/:project/webhooks", s.webhooksPage, s.member(identity.RoleAdmin))
	g.POST("/:project/webhooks", s.createWebhook, s.member(identity.RoleAdmin))
	g.POST("/:project/webhooks/:id/test", s.testWebhook, s.member(identity.RoleAdmin))
	g.POST("/:project/webhooks/:id/delete", s.deleteWebhook, s.member(identity.RoleAdmin))
	g.GET("/:project/change-requests", s.changeRequestsPage, s.member(identity.RoleViewer))
	g.GET("/:project/change-requests/:id", s.changeRequestPage, s.member(identity.RoleViewer))
	g.POST("/:project/change-requests/:id/:action", s.changeRequestAction, s.member(identity.RoleEditor))
	g.POST("/:project/environments/:environment/protection", s.protect, s.member(identity.RoleAdmin))
	s.registerAdmin(g)
}

// staticHandler serves embedded assets with a short cache: they change with the binary.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// headers are the security headers of every page: nothing but this origin may be loaded or framed,
// no inline script runs, and nothing is cached (pages show SDK keys and who changed what).
func (s *Server) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

const sessionKey = "vexil.web.session"

func sessionOf(c echo.Context) *identity.Session {
	sess, _ := c.Get(sessionKey).(*identity.Session)
	return sess
}

func (s *Server) cookieName(c echo.Context) string {
	if c.IsTLS() {
		return secureSessionCookie
	}
	return SessionCookie
}

func (s *Server) lookup(c echo.Context) (*identity.Session, error) {
	ck, err := c.Cookie(s.cookieName(c))
	if err != nil || ck.Value == "" {
		return nil, domain.Errorf(domain.EUnauthorized, "not signed in")
	}
	sess, err := s.people.LookupSession(c.Request().Context(), ck.Value, s.opts.Sessions)
	if err != nil {
		return nil, err
	}
	return &sess, nil
}

// optionalSession resolves a session when there is one (the login page redirects a signed-in
// person), never refusing.
func (s *Server) optionalSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sess, err := s.lookup(c); err == nil {
			c.Set(sessionKey, sess)
		}
		return next(c)
	}
}

// session requires a live session: pages redirect to the sign-in page, htmx and other requests get
// 401 (htmx is told to go to the sign-in page with HX-Redirect).
func (s *Server) session(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := s.lookup(c)
		if domain.ErrorCode(err) == domain.EUnauthorized {
			if c.Request().Header.Get("HX-Request") != "" {
				c.Response().Header().Set("HX-Redirect", "/login")
				return c.NoContent(http.StatusUnauthorized)
			}
			if c.Request().Method == http.MethodGet {
				return c.Redirect(http.StatusSeeOther, "/login?next="+urlQueryEscape(c.Request().URL.RequestURI()))
			}
			return s.errorPage(c, http.StatusUnauthorized, "Your session has ended. Sign in again.")
		}
		if err != nil {
			return s.fail(c, err)
		}
		c.Set(sessionKey, sess)
		return next(c)
	}
}

// csrf refuses every state-changing request that does not carry the session's token (synchronizer
// token pattern), and every one sent by another site (Sec-Fetch-Site), before anything runs.
func (s *Server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return next(c)
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			return s.errorPage(c, http.StatusForbidden, "This request came from another site and was refused.")
		}
		token := r.Header.Get(csrfHeader)
		if token == "" {
			token = c.FormValue(csrfField)
		}
		if sess := sessionOf(c); sess == nil || !sess.CheckCSRF(token) {
			return s.errorPage(c, http.StatusForbidden, "This form has expired or did not come from this console (missing or wrong CSRF token). Reload the page and try again.")
		}
		return next(c)
	}
}

const roleKey = "vexil.web.role"

// member requires the person to have at least role in the :project of the path. A person who is
// no member sees "not found", so project names do not leak.
func (s *Server) member(need string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			sess := sessionOf(c)
			role, err := s.people.Role(c.Request().Context(), sess.User, c.Param("project"))
			if err != nil {
				return s.fail(c, err)
			}
			if role == "" {
				return s.errorPage(c, http.StatusNotFound, fmt.Sprintf("There is no project %q, or you are not a member of it.", c.Param("project")))
			}
			if !domain.ScopeAllows(identity.ScopeOf(role), identity.ScopeOf(need)) {
				return s.errorPage(c, http.StatusForbidden, fmt.Sprintf("You are %s in this project; this needs %s.", article(role), article(need)))
			}
			c.Set(roleKey, role)
			return next(c)
		}
	}
}

func article(role string) string {
	if role == identity.RoleAdmin || role == identity.RoleEditor {
		return "an " + role
	}
	return "a " + role
}

func roleOf(c echo.Context) string {
	r, _ := c.Get(roleKey).(string)
	return r
}

// canEdit tells templates whether to show edit controls.
func canEdit(c echo.Context) bool {
	return domain.ScopeAllows(identity.ScopeOf(roleOf(c)), domain.ScopeWrite)
}

// meta attributes a change to the signed-in person, with the reason typed in the form.
func meta(c echo.Context) domain.Metadata {
	reason := strings.TrimSpace(c.FormValue(reasonField))
	if r := []rune(reason); len(r) > 1000 {
		reason = string(r[:1000])
	}
	return domain.Metadata{Actor: sessionOf(c).User.Actor(), Reason: reason, RequestID: httpapi.RequestID(c)}
}

// fail shows an error the person cannot fix at a field: 4xx with the message, 503 with
// Retry-After when a dependency is down, and for anything else a 500 page that leaks nothing.
func (s *Server) fail(c echo.Context, err error) error {
	if done, rerr := s.pending(c, err); done {
		return rerr // a protected environment: the change became a change request
	}
	code := domain.ErrorCode(err)
	status := httpapi.StatusOf(code)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if _, down := httpapi.Outage(err); down || code == domain.EUnavailable {
		c.Response().Header().Set("Retry-After", "5")
		return s.errorPage(c, http.StatusServiceUnavailable, "A service Vexil depends on is unavailable. Nothing was changed; try again in a moment.")
	}
	if status >= 500 {
		s.log.Error("console page failed", "path", c.Path(), "err", err, "request_id", httpapi.RequestID(c))
		return s.errorPage(c, status, "Something went wrong on our side (request "+httpapi.RequestID(c)+"). Nothing was lost; try again.")
	}
	return s.errorPage(c, status, domain.ErrorMessage(err))
}
