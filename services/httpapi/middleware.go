package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const requestIDKey = "vexil.request_id"

// RequestID returns the id of the request: the caller's X-Request-Id when sane, or a new one.
func RequestID(c echo.Context) string {
	if v, ok := c.Get(requestIDKey).(string); ok {
		return v
	}
	return ""
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
			if id == "" || len(id) > 128 {
				var b [8]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			c.Set(requestIDKey, id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
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
				m.requests.WithLabelValues(c.Request().Method, route, strconv.Itoa(status)).Inc()
				m.duration.WithLabelValues(c.Request().Method, route).Observe(elapsed.Seconds())
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

func levelOf(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// Metrics are the HTTP request metrics of one process.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
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
