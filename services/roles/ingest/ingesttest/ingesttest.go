// Package ingesttest starts the real platform for end-to-end tests of the telemetry flow (SDK
// event ingestion, the telemetry projector, console stats) and talks to it over HTTP. The
// platform's own end-to-end tests (services/platform) start it here too.
package ingesttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/testkit"
)

// AdminToken is the bootstrap admin token of platforms started here.
const AdminToken = "vxl_telemetry-test-admin-token-0123"

// Vexil is a running platform with its configuration.
type Vexil struct {
	T        testing.TB
	P        *platform.Platform
	Base     string
	Database string
	Redis    string
	Prefix   string
}

// Start runs the platform (every role unless args say --roles) on a fresh PostgreSQL database
// and Redis prefix; args override the defaults (e.g. "--redis-url", proxy.URL()).
func Start(t testing.TB, args ...string) *Vexil {
	t.Helper()
	return StartWith(t, nil, args...)
}

// StartWith is Start with before called on the opened platform before it starts (e.g. to hold
// /readyz with NotReadyUntil).
func StartWith(t testing.TB, before func(*platform.Platform), args ...string) *Vexil {
	t.Helper()
	v := &Vexil{T: t, Database: pgtest.NewDatabase(t), Redis: redistest.URL(), Prefix: redistest.NewPrefix(t)}
	all := append([]string{"--database-url", v.Database, "--redis-url", v.Redis, "--stream-prefix", v.Prefix,
		"--http-addr", "127.0.0.1:0", "--admin-token", AdminToken, "--consistency-wait", "5s"}, args...)
	cfg, err := config.Parse("test", all, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	v.Redis = cfg.RedisURL
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		w := &testWriter{t: t}
		t.Cleanup(func() { w.done.Store(true) }) // runs after the platform's Close (cleanups run last first)
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx := context.Background()
	p, err := platform.Open(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	v.P = p
	if before != nil {
		before(p)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	v.Base = "http://" + p.Addr
	return v
}

// testWriter logs through the test until it ends (goroutines of the bus may log after Close).
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

// Response is an answer of the platform.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object, failing the test otherwise.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer is not a JSON object (%d): %s", r.Status, r.Body)
	}
	return m
}

// Do sends a request with Authorization: Bearer key (an API token or an SDK key; "" for none).
// body is sent as is when it is a string or []byte, as JSON otherwise.
func (v *Vexil) Do(method, path, key string, body any, headers ...string) Response {
	v.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			v.T.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, v.Base+path, rd)
	if err != nil {
		v.T.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		v.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Must sends a request as the admin and fails the test unless the status is want.
func (v *Vexil) Must(want int, method, path string, body any) map[string]any {
	v.T.Helper()
	r := v.Do(method, path, AdminToken, body)
	if r.Status != want {
		v.T.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(v.T)
}

// Keys are the SDK keys of one environment.
type Keys struct{ Client, Server string }

// CreateProject creates a project (environments development and production) and a boolean flag
// per name, and waits until the api role knows the production keys (if it runs here).
func (v *Vexil) CreateProject(project string, flags ...string) Keys {
	v.T.Helper()
	p := v.Must(201, "POST", "/api/v1/projects", map[string]any{"key": project, "name": project})
	var keys Keys
	if envs, ok := p["environments"].(map[string]any); ok {
		if env, ok := envs["production"].(map[string]any); ok {
			keys.Client, _ = env["client_key"].(string)
			keys.Server, _ = env["server_key"].(string)
		}
	}
	if keys.Server == "" || keys.Client == "" {
		v.T.Fatalf("no production keys in %v", p)
	}
	for _, f := range flags {
		v.Must(201, "POST", "/api/v1/projects/"+project+"/flags", map[string]any{"key": f, "name": f, "type": "boolean"})
	}
	if v.P.SDK != nil {
		WaitFor(v.T, 10*time.Second, "the api role to know the keys", func() bool {
			return v.Do("GET", "/ofrep/v1/configuration", keys.Server, nil).Status == 200
		})
	}
	return keys
}

// Count runs a count query on the platform's database.
func (v *Vexil) Count(sql string, args ...any) int64 {
	v.T.Helper()
	var n int64
	if err := v.P.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		v.T.Fatalf("%s: %v", sql, err)
	}
	return n
}

// WaitFor is testkit.WaitFor, the one poll-with-deadline helper of the tests, under the name the
// telemetry tests already call.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, cond)
}

// Events builds a POST /sdk/v1/events body of n evaluation events of flag (variations
// alternating "true"/"false", users user-0.. user-<users-1>), with event ids so retries dedupe.
func Events(flag string, n, users int, start int) map[string]any {
	events := make([]any, n)
	for i := range events {
		k := start + i
		events[i] = map[string]any{"kind": "evaluation", "event_id": EventID(k), "flag_key": flag,
			"variation_key": []string{"true", "false"}[k%2], "reason": "SPLIT", "user_key": fmt.Sprintf("user-%d", k%users)}
	}
	return map[string]any{"events": events}
}

// EventID is a deterministic UUID (version 7 layout) for event number k.
func EventID(k int) string {
	return fmt.Sprintf("0190d7a4-8c1e-7%03x-8%03x-%012x", (k>>24)&0xfff, (k>>12)&0xfff, k)
}
