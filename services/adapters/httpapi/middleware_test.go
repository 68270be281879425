package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRequestsMiddleware(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := echo.New()
	e.Use(Requests(slog.New(slog.NewTextHandler(io.Discard, nil)), m))
	e.Any("/echo-id", func(c echo.Context) error { return c.String(http.StatusOK, RequestID(c)) })

	do := func(method, id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/echo-id", nil)
		if id != "" {
			req.Header.Set(echo.HeaderXRequestID, id)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	a, b := do("GET", ""), do("GET", "")
	idA, idB := a.Header().Get(echo.HeaderXRequestID), b.Header().Get(echo.HeaderXRequestID)
	if idA == "" || idA == idB || a.Body.String() != idA || b.Body.String() != idB {
		t.Fatalf("generated ids %q %q, handlers saw %q %q", idA, idB, a.Body, b.Body)
	}
	if r := do("POST", "caller-id-1"); r.Header().Get(echo.HeaderXRequestID) != "caller-id-1" || r.Body.String() != "caller-id-1" {
		t.Fatalf("the caller's id is not kept: %q %q", r.Header().Get(echo.HeaderXRequestID), r.Body)
	}
	if r := do("GET", strings.Repeat("x", 129)); len(r.Header().Get(echo.HeaderXRequestID)) > 128 {
		t.Fatal("an overlong caller id is kept")
	}
	// Arbitrary method tokens share one series.
	do("FOO", "")
	do("BAR", "")
	counts := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "vexil_http_requests_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			labels := ""
			for _, l := range metric.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + " "
			}
			counts[labels] = metric.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"method=GET route=/echo-id status=200 ":   3,
		"method=POST route=/echo-id status=200 ":  1,
		"method=OTHER route=/echo-id status=405 ": 2, // echo.Any knows only the standard methods
	}
	if len(counts) != len(want) {
		t.Fatalf("series %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Fatalf("series %v, want %v", counts, want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(2, 3) // 2 per second, bursts of 3
	t0 := time.Unix(1_000_000, 0)
	for i := 0; i < 3; i++ {
		if _, ok := l.Allow("k", t0); !ok {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	wait, ok := l.Allow("k", t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: ok %v, wait %v, want a refusal and 500ms", ok, wait)
	}
	if RetryAfter(wait) != "1" || RetryAfter(1500*time.Millisecond) != "2" || RetryAfter(2*time.Second) != "2" {
		t.Fatalf("RetryAfter rounds up to whole seconds: %s %s %s", RetryAfter(wait), RetryAfter(1500*time.Millisecond), RetryAfter(2*time.Second))
	}
	if _, ok := l.Allow("other", t0); !ok {
		t.Fatal("another key shares the bucket")
	}
	if _, ok := l.Allow("k", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("a token refilled after 500ms was refused")
	}
	// Memory is bounded by the keys active recently: refilled buckets are swept.
	for i := 0; i < 5000; i++ {
		l.Allow(strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.keys); n > 2048 {
		t.Fatalf("%d buckets kept for 5,000 one-off keys", n)
	}
}
