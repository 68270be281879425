package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// RequestID returns the id of the request: the caller's X-Request-Id when sane, or a new one.
// Requests keeps it in the response header, which is per request anyway, rather than in the
// echo context's store (a map allocated per request).
func RequestID(c echo.Context) string {
	if v := c.Response().Header()[echo.HeaderXRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestIDs makes request ids: a random prefix chosen once per process and a counter. They only
// need to be unique (they correlate logs and audit entries), not unpredictable, so a per-request
// read of the system's random source is not worth its syscall.
var requestIDs = func() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: hex.EncodeToString(b[:])}
}()

type idSource struct {
	prefix string
	n      atomic.Uint64
}

func (s *idSource) next() string {
	buf := make([]byte, 0, len(s.prefix)+1+13)
	buf = append(buf, s.prefix...)
	buf = append(buf, '-')
	return string(strconv.AppendUint(buf, s.n.Add(1), 36))
}

// Recover turns a panic in a handler into a 500 with a logged stack, never a dropped connection.
func Recover(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("panic in handler", "panic", r, "path", c.Path(), "request_id", RequestID(c))
					err = echo.NewHTTPError(500)
				}
			}()
			return next(c)
		}
	}
}

// Requests assigns request ids, logs each request and records request metrics.
func Requests(log *slog.Logger, m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if id == "" || len(id) > 128 || !printableASCII(id) { // it is stored with every change
				id = requestIDs.next()
			}
			c.Response().Header()[echo.HeaderXRequestID] = []string{id}
			err := next(c)
			if err != nil {
				c.Error(err) // write the error now so the status below is the real one
			}
			status := c.Response().Status
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			if m != nil {
				m.observe(c.Request().Method, route, status, elapsed)
			}
			if log.Enabled(c.Request().Context(), slog.LevelDebug) || status >= 500 {
				log.Log(c.Request().Context(), levelOf(status), "request", "method", c.Request().Method,
					"route", route, "status", status, "duration_ms", float64(elapsed.Microseconds())/1000,
					"request_id", id)
			}
			return nil
		}
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func levelOf(status int) slog.Level {
	if status == http.StatusServiceUnavailable {
		return slog.LevelWarn // a dependency is down: ErrorHandler has said which
	}
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// Metrics are the HTTP request metrics of one process.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// children caches routeMetrics by routeKey. Routes are the registered patterns (or
	// "unmatched"), methods the standard ones (or OTHER) and statuses what handlers answer, so
	// the set, like the metrics' series, is bounded whatever clients send.
	children sync.Map
}

// routeMetrics are the metric children of one method, route and status, looked up once:
// WithLabelValues hashes its labels and formats the status on every call.
type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

type routeKey struct {
	method, route string
	status        int
}

func (m *Metrics) observe(method, route string, status int, elapsed time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		method = "OTHER" // a client-chosen token must not make a series of its own
	}
	k := routeKey{method, route, status}
	rm, ok := m.children.Load(k)
	if !ok {
		rm, _ = m.children.LoadOrStore(k, &routeMetrics{
			requests: m.requests.WithLabelValues(method, route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(method, route),
		})
	}
	r := rm.(*routeMetrics)
	r.requests.Inc()
	r.duration.Observe(elapsed.Seconds())
}

// NewMetrics registers the request metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vexil_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}
