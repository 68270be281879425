package platform_test

import (
	"slices"
	"strings"
	"testing"
)

// A web page on another origin can call the SDK routes with a client key: the preflight answers
// without a key and without spending the key's rate limit, and the real answers carry
// Allow-Origin and expose ETag, which polling with If-None-Match needs.
func TestBrowserCORSOnSDKRoutes(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "--sdk-rate-limit", "1")
	const page = "http://127.0.0.1:5555"
	preflight := func(path, method string) response {
		return e.v.as("").do("OPTIONS", path, nil, "Origin", page, "Access-Control-Request-Method", method,
			"Access-Control-Request-Headers", "authorization,content-type,if-none-match")
	}
	// Far more preflights than the limit of one request a second allows.
	for i := 0; i < 5; i++ {
		for _, p := range [][2]string{{"/ofrep/v1/evaluate/flags", "POST"}, {"/ofrep/v1/evaluate/flags/layout", "POST"},
			{"/ofrep/v1/configuration", "GET"}, {"/sdk/v1/stream", "GET"}, {"/sdk/v1/events", "POST"}} {
			r := preflight(p[0], p[1])
			h := r.Header
			if r.Status != 204 || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Max-Age") != "86400" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), p[1]) {
				t.Fatalf("preflight %s %s: %d %v", p[1], p[0], r.Status, h)
			}
			for _, want := range []string{"Authorization", "Content-Type", "If-None-Match", "X-API-Key", "Last-Event-ID"} {
				if !slices.Contains(strings.Split(h.Get("Access-Control-Allow-Headers"), ", "), want) {
					t.Fatalf("preflight %s allows headers %q, lacks %s", p[0], h.Get("Access-Control-Allow-Headers"), want)
				}
			}
		}
	}
	// The bucket still holds its token: the preflights took none.
	r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{"targetingKey":"u1"}}`, "Origin", page)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("bulk after preflights: %d %v %s", r.Status, r.Header, r.Body)
	}
	exposed := strings.Split(r.Header.Get("Access-Control-Expose-Headers"), ", ")
	if !slices.Contains(exposed, "ETag") || !slices.Contains(exposed, "Retry-After") {
		t.Fatalf("exposed headers %q", exposed)
	}
	// The 429 that follows is readable by the page too, with its Retry-After.
	for i := 0; i < 20 && r.Status != 429; i++ { // a slow machine may refill a token between two calls
		r = e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{"targetingKey":"u1"}}`, "Origin", page)
	}
	if r.Status != 429 || r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("limited call: %d %v", r.Status, r.Header)
	}
	// The management API stays same-origin by default.
	if r := preflight("/api/v1/projects", "GET"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("management preflight answered CORS: %v", r.Header)
	}
	if r := e.v.do("GET", "/api/v1/projects", nil, "Origin", page); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("management call: %d %v", r.Status, r.Header)
	}
}

// Configured origin lists: the SDK routes echo a listed origin (with Vary: Origin) and refuse
// others; the management API answers the console's origin.
func TestConfiguredCORSOrigins(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "--sdk-cors-origins", "https://shop.example.com", "--console-cors-origins", "https://console.example.com",
		"--cors-max-age", "2h")
	r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{}}`, "Origin", "https://shop.example.com")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		!slices.Contains(r.Header.Values("Vary"), "Origin") {
		t.Fatalf("listed origin: %d %v", r.Status, r.Header)
	}
	r = e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{}}`, "Origin", "https://other.example.com")
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin allowed: %v", r.Header)
	}
	r = e.v.as("").do("OPTIONS", "/api/v1/projects/app/flags/layout", nil, "Origin", "https://console.example.com",
		"Access-Control-Request-Method", "PATCH", "Access-Control-Request-Headers", "authorization,content-type")
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://console.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "PATCH") || r.Header.Get("Access-Control-Max-Age") != "7200" {
		t.Fatalf("console preflight: %d %v", r.Status, r.Header)
	}
	if r := e.v.do("GET", "/api/v1/projects", nil, "Origin", "https://console.example.com"); r.Status != 200 ||
		r.Header.Get("Access-Control-Allow-Origin") != "https://console.example.com" {
		t.Fatalf("console call: %d %v", r.Status, r.Header)
	}
}
