package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// connWriter is a reusable ResponseWriter with net/http's deadline methods, as a server
// connection's writer has, so the middleware takes the path it takes in production.
type connWriter struct{ h http.Header }

func (w *connWriter) Header() http.Header              { return w.h }
func (w *connWriter) WriteHeader(int)                  {}
func (w *connWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (w *connWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *connWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *connWriter) reset()                           { clear(w.h) }

// The cost of the middleware chain on a small JSON answer, before (Recover and Requests only)
// and with the security headers and per-request deadlines.
func BenchmarkMiddleware(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, bc := range []struct {
		name  string
		chain func() []echo.MiddlewareFunc
	}{
		{"recover+requests", func() []echo.MiddlewareFunc {
			return []echo.MiddlewareFunc{httpapi.Recover(log), httpapi.Requests(log, httpapi.NewMetrics(prometheus.NewRegistry()))}
		}},
		{"full", func() []echo.MiddlewareFunc {
			return httpapi.Middleware(log, httpapi.NewMetrics(prometheus.NewRegistry()),
				httpapi.Timeouts{Body: 30 * time.Second, Write: time.Minute}, nil)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := echo.New()
			e.Use(bc.chain()...)
			e.POST("/x", func(c echo.Context) error { return c.JSONBlob(200, []byte(`{"key":"x","value":true}`)) })
			w := &connWriter{h: http.Header{}}
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/x", http.NoBody)
			req.ContentLength = 10
			req.Body = io.NopCloser(nil)
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				e.ServeHTTP(w, req)
			}
		})
	}
}
