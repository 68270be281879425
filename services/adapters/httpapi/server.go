package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Timeouts bound how long a client may hold a connection without doing its part, so a slow or
// malicious client (slowloris: headers or a body trickled a byte at a time) cannot pin
// connections and goroutines.
type Timeouts struct {
	// ReadHeader bounds reading a request's line and headers.
	ReadHeader time.Duration
	// Body bounds reading a request's body, from the end of its headers. Requests without a body
	// (SSE streams are GETs) get no read deadline past their headers.
	Body time.Duration
	// Write bounds a request from the end of its headers to the last byte of its answer. Streams
	// (SSE, exports) get it per write instead: each write must complete within it.
	Write time.Duration
	// Idle bounds a keep-alive connection's wait for its next request.
	Idle time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 past it).
	MaxHeaderBytes int
}

// NewServer is the one place Vexil's HTTP servers are built. The server's own ReadTimeout and
// WriteTimeout stay 0 on purpose: a WriteTimeout would cut SSE streams and long exports, and
// Deadlines applies the Body and Write timeouts per request instead, so each route gets what
// fits it and a body's time starts when its headers are in.
func NewServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, IdleTimeout: t.Idle,
		MaxHeaderBytes: t.MaxHeaderBytes}
}

// Middleware is the chain every Vexil server runs, in order: panics become 500s, then the
// security headers and per-request deadlines (one middleware: echo allocates a closure per
// middleware per request), then request ids, logs and metrics. isStream is as for Deadlines.
func Middleware(log *slog.Logger, m *Metrics, t Timeouts, isStream func(echo.Context) bool) []echo.MiddlewareFunc {
	edge := &edge{t: t, isStream: isStream} // one pointer for the per-request closure to hold
	return []echo.MiddlewareFunc{Recover(log), func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			setSecurityHeaders(c.Response().Header())
			setDeadlines(c, &edge.t, edge.isStream)
			return next(c)
		}
	}, Requests(log, m)}
}

type edge struct {
	t        Timeouts
	isStream func(echo.Context) bool
}

// Deadlines sets the per-request deadlines of t on the connection. isStream tells the routes
// whose answer is a long-lived stream (nil: none); they get Write per write, not per request.
func Deadlines(t Timeouts, isStream func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			setDeadlines(c, &t, isStream)
			return next(c)
		}
	}
}

func setDeadlines(c echo.Context, t *Timeouts, isStream func(echo.Context) bool) {
	r := c.Request()
	res := c.Response()
	// net/http's own writer has the deadline methods: asserting them spares the
	// ResponseController's allocation on every request; wrapped writers go through one.
	rc, ok := res.Writer.(deadliner)
	if !ok {
		rc = http.NewResponseController(res.Writer)
	}
	now := time.Now()
	if t.Body > 0 && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		// An error means the writer is not a server connection (tests, benchmarks): no deadline
		// to keep there. net/http lifts the deadline itself once the body has been read to its
		// end (its read-ahead must not time out while the handler runs); a body left unread
		// keeps it, which then bounds the server's discarding of the rest.
		_ = rc.SetReadDeadline(now.Add(t.Body))
	}
	if t.Write > 0 {
		if isStream != nil && isStream(c) {
			_ = rc.SetWriteDeadline(time.Time{})
			res.Writer = &perWriteDeadline{ResponseWriter: res.Writer, rc: rc, d: t.Write}
		} else {
			_ = rc.SetWriteDeadline(now.Add(t.Write))
		}
	}
}

// deadliner sets a connection's deadlines, as net/http's ResponseWriter and ResponseController do.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// perWriteDeadline gives every write of a stream d to complete: a client that stops reading
// (its TCP window full) is dropped instead of holding the handler forever, while a stream that is
// quiet for longer than d stays open.
type perWriteDeadline struct {
	http.ResponseWriter
	rc deadliner
	d  time.Duration
}

func (w *perWriteDeadline) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *perWriteDeadline) FlushError() error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *perWriteDeadline) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Security headers. The values are shared, read-only slices assigned straight into the header
// map: no canonicalisation or allocation per answer on the hot path.
var (
	nosniff        = []string{"nosniff"}
	frameDeny      = []string{"DENY"}
	noReferrer     = []string{"no-referrer"}
	contentPolicy  = []string{ContentSecurityPolicy}
	noStore        = []string{"no-store"}
	crossOriginOps = []string{"same-origin"}
)

// ContentSecurityPolicy is sent with every answer. It is ready for a server-rendered console:
// scripts, styles, images and fetches from this origin only, no inline script, no plugins, no
// framing (clickjacking), forms post only here. JSON and SSE answers are unaffected by it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// SecurityHeaders sets the headers every answer carries: no MIME sniffing, no framing (old and
// new spelling), no Referer leaking URLs (a trigger's URL may carry its secret), the content
// security policy, and a browsing-context isolation. It runs before the handler, so error answers
// carry them too.
func SecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setSecurityHeaders(c.Response().Header())
		return next(c)
	}
}

func setSecurityHeaders(h http.Header) {
	h["X-Content-Type-Options"] = nosniff
	h["X-Frame-Options"] = frameDeny
	h["Referrer-Policy"] = noReferrer
	h["Content-Security-Policy"] = contentPolicy
	h["Cross-Origin-Opener-Policy"] = crossOriginOps
}

// NoStore marks an answer as never to be stored by a browser or proxy cache: management answers
// carry SDK keys, token and trigger secrets, and data only its reader may see.
func NoStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header()["Cache-Control"] = noStore
		return next(c)
	}
}
