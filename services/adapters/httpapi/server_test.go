package httpapi_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// serve runs e behind httpapi.NewServer on a loopback port of its own.
func serve(t *testing.T, e *echo.Echo, to httpapi.Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(e, to)
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// A body deadline bounds reading the body, not the handler: once the body is read, a handler
// may run past the deadline without its context being canceled (net/http's read-ahead on the
// connection would otherwise time out and cancel it).
func TestBodyDeadlineDoesNotCancelASlowHandler(t *testing.T) {
	const body = 300 * time.Millisecond
	e := echo.New()
	e.Use(httpapi.Deadlines(httpapi.Timeouts{Body: body, Write: 10 * time.Second}, nil))
	e.POST("/slow", func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return err
		}
		select {
		case <-c.Request().Context().Done():
			return c.String(http.StatusGatewayTimeout, "canceled: "+c.Request().Context().Err().Error())
		case <-time.After(3 * body): // a handler slower than the body deadline
		}
		return c.String(http.StatusOK, "done")
	})
	base := serve(t, e, httpapi.Timeouts{ReadHeader: time.Second})
	res, err := http.Post(base+"/slow", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != "done" {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
}

// Every answer carries the security headers, errors and unknown routes included.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.Use(httpapi.SecurityHeaders)
	e.GET("/ok", func(c echo.Context) error { return c.JSON(200, map[string]bool{"ok": true}) })
	e.GET("/bad", func(echo.Context) error { return domain.Invalid("x", "bad x") })
	e.GET("/secret", func(c echo.Context) error { return c.JSON(200, map[string]string{"secret": "s"}) }, httpapi.NoStore)
	base := serve(t, e, httpapi.Timeouts{ReadHeader: time.Second})
	for _, path := range []string{"/ok", "/bad", "/nowhere", "/secret"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		h := res.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Content-Security-Policy") != httpapi.ContentSecurityPolicy {
			t.Fatalf("%s: headers %v", path, h)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
			!strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("%s: CSP %q", path, csp)
		}
		if (path == "/secret") != (h.Get("Cache-Control") == "no-store") {
			t.Fatalf("%s: Cache-Control %q", path, h.Get("Cache-Control"))
		}
	}
}
