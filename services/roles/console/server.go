package console

import (
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/analysis"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// Server is the management REST API.
type Server struct {
	app      *app.Application
	log      *slog.Logger
	maxBody  int64
	analyzer *analysis.Analyzer // nil: no on-demand analysis or reports
	triggers *httpapi.Limiter   // calls of each webhook trigger; nil: unlimited
	signer   cursorKeys         // signs list cursors (cursors.go)
	// webhooks are the outgoing webhook subscriptions (webhooks.go); nil: 503.
	webhooks     *webhooks.Store
	wakeWebhooks func()
}

// NewServer builds the management API over the application layer a. maxBody bounds request
// bodies (413 past it).
func NewServer(a *app.Application, log *slog.Logger, maxBody int64) *Server {
	return &Server{app: a, log: log, maxBody: maxBody}
}

// WithTriggerRateLimit limits each webhook trigger to perMinute accepted calls a minute, in
// bursts of up to 10; past it a call answers 429 with Retry-After and records nothing. A caller
// stuck in a loop (an alert re-firing every second) would otherwise append an event per call to
// the trigger's stream and the audit log. 0 leaves triggers unlimited.
func (s *Server) WithTriggerRateLimit(perMinute int) *Server {
	if perMinute > 0 {
		s.triggers = httpapi.NewLimiter(float64(perMinute)/60, float64(min(perMinute, 10)))
	}
	return s
}

// route is one operation of the API. The table drives both registration and the OpenAPI
// document, and a test checks the two against echo's registered routes.
type route struct {
	method, path string
	scope        string // "" for the unauthenticated OpenAPI document
	reach        reach  // what the route acts on (policy.go); "" derives it from the path
	summary      string
	tag          string
	request      any // zero value of the JSON body type, or nil
	response     any // zero value of the JSON response type, or nil
	status       int // success status
	query        []string
	handler      func(*Server, echo.Context) error
}

// Register adds the management routes to e under /api/v1. Every answer (errors included) is
// Cache-Control: no-store: many carry SDK keys, token or trigger secrets, and all carry data that
// only the token's holder may see.
func (s *Server) Register(e *echo.Echo) {
	g := e.Group("/api/v1")
	for _, r := range allRoutes() {
		checkRoute(r)
		h := func(r route) echo.HandlerFunc {
			return func(c echo.Context) error {
				err := r.handler(s, c)
				if p, ok := app.AsPending(err); ok {
					return answerPending(c, p) // a protected environment: a change request instead
				}
				return err
			}
		}(r)
		if r.scope == "" {
			g.Add(r.method, r.path, h, httpapi.NoStore)
			continue
		}
		g.Add(r.method, r.path, h, httpapi.NoStore, s.authenticate, authorize(r))
	}
}

// exportPaths are the routes (as registered) that export a whole log when asked for a format.
var exportPaths = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range allRoutes() {
		if r.method == get && slices.Contains(r.query, "format") {
			m["/api/v1"+r.path] = true
		}
	}
	return m
}()

// IsStream reports whether the request is an export: its answer is written as the log is read,
// for as long as that takes, so it is bounded per write rather than as a whole.
func IsStream(c echo.Context) bool {
	return exportPaths[c.Path()] && c.QueryParam("format") != ""
}

// allRoutes is every operation of the management API, grouped by area in their own tables.
func allRoutes() []route {
	return append(append(append(append(append(routes(), experimentRoutes()...), historyRoutes()...), webhookRoutes()...), releaseRoutes()...),
		changeRequestRoutes()...)
}

// decode reads a strict JSON body.
func (s *Server) decode(c echo.Context, v any) error {
	return httpapi.DecodeJSON(c, s.maxBody, v)
}

// readPatch reads a PATCH body, a JSON Merge Patch (RFC 7396); notNull are the members the
// resource cannot do without (see httpapi.ReadMergePatch).
func (s *Server) readPatch(c echo.Context, notNull ...string) (map[string]any, error) {
	return httpapi.ReadMergePatch(c, s.maxBody, notNull...)
}

// meta says who runs a command through this request: the token, X-Vexil-Reason, the request id.
func meta(c echo.Context) app.Meta {
	return app.Meta{Actor: actor(c), Reason: c.Request().Header.Get(httpapi.ReasonHeader), RequestID: httpapi.RequestID(c)}
}

// metaIfMatch is meta with the version the client expects the aggregate at (If-Match), for
// commands on an existing aggregate.
func metaIfMatch(c echo.Context) (app.Meta, error) {
	expected, err := expectedVersion(c)
	if err != nil {
		return app.Meta{}, err
	}
	m := meta(c)
	m.Expected = expected
	return m, nil
}

// expectedVersion reads If-Match: "N" (the ETag of a previous GET) for optimistic concurrency;
// nil without one.
func expectedVersion(c echo.Context) (*int64, error) {
	h := c.Request().Header.Get("If-Match")
	if h == "" || h == "*" {
		return nil, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 0 {
		return nil, domain.Invalid("If-Match", "If-Match must be the quoted version from an ETag, e.g. \"3\"")
	}
	return &v, nil
}

// withVersion answers an entity with its version as ETag.
func withVersion(c echo.Context, status int, version int64, body any) error {
	c.Response().Header().Set("ETag", strconv.Quote(strconv.FormatInt(version, 10)))
	return c.JSON(status, body)
}

// page is the envelope of every list answer.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func newPage[T any](items []T, next string) page[T] {
	if items == nil {
		items = []T{}
	}
	return page[T]{Items: items, NextCursor: next}
}

// queryInt parses an optional integer query parameter.
func queryInt(c echo.Context, name string) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, domain.Invalid(name, "%s must be a non-negative integer", name)
	}
	return n, nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(c echo.Context, name string) (*bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, domain.Invalid(name, "%s must be true or false", name)
	}
	return &b, nil
}

var _ = http.StatusOK
