package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// corsServer has an SDK-like route, a management-like route and a route outside any policy; the
// handlers count their calls, so a test sees whether a preflight reached them.
func corsServer(t *testing.T, sdkOrigins, consoleOrigins []string) (*echo.Echo, *int) {
	t.Helper()
	calls := 0
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(CORS(
		CORSPolicy{Prefixes: []string{"/sdk/"}, Origins: sdkOrigins, Methods: []string{"GET", "POST", "OPTIONS"},
			Headers: []string{"Authorization", "Content-Type"}, Expose: []string{"ETag", "Retry-After"}, MaxAge: 24 * time.Hour},
		CORSPolicy{Prefixes: []string{"/api/"}, Origins: consoleOrigins, Methods: []string{"GET", "PATCH"},
			Headers: []string{"Authorization"}, Expose: []string{"ETag"}},
	))
	h := func(c echo.Context) error {
		calls++
		c.Response().Header().Set("ETag", `"1"`)
		return c.String(http.StatusOK, "ok")
	}
	e.POST("/sdk/eval", h)
	e.GET("/api/things", h)
	e.GET("/other", h)
	e.GET("/sdk/unauthorized", func(c echo.Context) error { return echo.NewHTTPError(http.StatusUnauthorized) })
	return e, &calls
}

func serve(e *echo.Echo, method, path string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestCORSPreflightIsAnsweredBeforeHandlers(t *testing.T) {
	e, calls := corsServer(t, []string{"*"}, nil)
	rec := serve(e, "OPTIONS", "/sdk/eval", "Origin", "http://page.test", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type")
	h := rec.Header()
	if rec.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" ||
		h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		h.Get("Access-Control-Max-Age") != "86400" || *calls != 0 {
		t.Fatalf("preflight: %d %v, handler calls %d", rec.Code, h, *calls)
	}
	if slices.Contains(h.Values("Vary"), "Origin") {
		t.Fatal("a wildcard answer does not vary by origin, yet says Vary: Origin")
	}
	// The real call carries the origin and the exposed headers.
	rec = serve(e, "POST", "/sdk/eval", "Origin", "http://page.test")
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
		rec.Header().Get("Access-Control-Expose-Headers") != "ETag, Retry-After" {
		t.Fatalf("real call: %d %v", rec.Code, rec.Header())
	}
	// So does an error, or the page could not read why it was refused.
	if rec := serve(e, "GET", "/sdk/unauthorized", "Origin", "http://page.test"); rec.Code != 401 ||
		rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("error answer: %d %v", rec.Code, rec.Header())
	}
	// The management routes have no origins configured: no CORS headers, and the preflight is
	// echo's plain OPTIONS answer, which a browser treats as a refusal.
	for _, m := range []string{"OPTIONS", "GET"} {
		rec := serve(e, m, "/api/things", "Origin", "http://page.test", "Access-Control-Request-Method", "GET")
		if v := rec.Header().Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("%s /api/things answers Allow-Origin %q with no console origins configured", m, v)
		}
	}
	// A plain OPTIONS (not a preflight) is not touched.
	if rec := serve(e, "OPTIONS", "/sdk/eval"); rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("OPTIONS without Origin: %v", rec.Header())
	}
}

func TestCORSWithAnOriginListEchoesTheOriginAndVaries(t *testing.T) {
	e, _ := corsServer(t, []string{"https://app.example.com"}, []string{"https://console.example.com"})
	rec := serve(e, "OPTIONS", "/sdk/eval", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!slices.Contains(rec.Header().Values("Vary"), "Origin") {
		t.Fatalf("listed origin preflight: %d %v", rec.Code, rec.Header())
	}
	rec = serve(e, "POST", "/sdk/eval", "Origin", "https://evil.example.com")
	if rec.Header().Get("Access-Control-Allow-Origin") != "" || !slices.Contains(rec.Header().Values("Vary"), "Origin") {
		t.Fatalf("unlisted origin: %v", rec.Header())
	}
	rec = serve(e, "OPTIONS", "/sdk/eval", "Origin", "https://evil.example.com", "Access-Control-Request-Method", "POST")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("unlisted origin preflight: %d %v", rec.Code, rec.Header())
	}
	// Without Max-Age configured none is sent.
	rec = serve(e, "OPTIONS", "/api/things", "Origin", "https://console.example.com", "Access-Control-Request-Method", "PATCH")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "https://console.example.com" ||
		rec.Header().Get("Access-Control-Allow-Methods") != "GET, PATCH" || rec.Header().Get("Access-Control-Max-Age") != "" {
		t.Fatalf("console preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := serve(e, "GET", "/other", "Origin", "https://app.example.com"); rec.Header().Get("Access-Control-Allow-Origin") != "" ||
		rec.Header().Get("Vary") != "" {
		t.Fatalf("a path outside every policy got CORS headers: %v", rec.Header())
	}
}
