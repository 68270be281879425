package console_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/roles/console"
)

// Every management route, and the webhook trigger, answers Cache-Control: no-store, errors
// included: many answers carry SDK keys or token and trigger secrets. The routes come from what
// echo registered, so a route added tomorrow is checked too.
func TestEveryManagementAnswerIsNoStore(t *testing.T) {
	e := echo.New()
	srv := console.NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 1<<20)
	srv.Register(e)
	srv.RegisterHooks(e)
	param := regexp.MustCompile(`:[a-z_]+`)
	checked := 0
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound || !(strings.HasPrefix(r.Path, "/api/v1/") || strings.HasPrefix(r.Path, console.HooksPath)) {
			continue
		}
		if r.Path == "/api/v1/openapi.json" {
			continue // public, static and without a secret; checked below anyway
		}
		path := param.ReplaceAllString(r.Path, "x")
		rec := httptest.NewRecorder()
		// No token: authentication refuses before anything reaches storage, and the refusal
		// must carry the header as much as an answer would.
		req := httptest.NewRequest(r.Method, path, strings.NewReader(`{}`))
		if strings.HasPrefix(r.Path, console.HooksPath) {
			req = httptest.NewRequest(r.Method, path, nil) // no secret: refused before storage
		}
		func() {
			defer func() { _ = recover() }() // the hook needs storage past its checks; the header is set before
			e.ServeHTTP(rec, req)
		}()
		if got := rec.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s: Cache-Control %q (status %d), want no-store", r.Method, r.Path, got, rec.Code)
		}
		checked++
	}
	if checked < 50 {
		t.Fatalf("only %d routes checked", checked)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("openapi.json: %d %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
}
