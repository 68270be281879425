package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// edgeCore is a core (every role) that the test stops and starts again on the same database,
// stream prefix and address, so the edges' upstream URL stays valid.
type edgeCore struct {
	t                 *testing.T
	db, redis, prefix string
	addr              string
	p                 *platform.Platform
	tv                *ingesttest.Vexil
	stopped           bool
	cleanupRegistered bool
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended is dropped
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (c *edgeCore) start() {
	c.t.Helper()
	cfg, err := config.Parse("core", []string{"--database-url", c.db, "--redis-url", c.redis, "--stream-prefix", c.prefix,
		"--http-addr", c.addr, "--admin-token", adminToken, "--consistency-wait", "5s"}, func(string) (string, bool) { return "", false })
	if err != nil {
		c.t.Fatal(err)
	}
	ctx := context.Background()
	p, err := platform.Open(ctx, cfg, testLogger(c.t))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		p.Close()
		c.t.Fatal(err)
	}
	c.p, c.addr, c.stopped = p, p.Addr, false
	c.tv = &ingesttest.Vexil{T: c.t, P: p, Base: "http://" + p.Addr, Database: c.db, Redis: c.redis, Prefix: c.prefix}
	if !c.cleanupRegistered {
		c.cleanupRegistered = true
		c.t.Cleanup(func() { c.stop() })
	}
}

func (c *edgeCore) stop() {
	if !c.stopped {
		c.stopped = true
		c.p.Close()
	}
}

// startEdge runs an edge process (in-process, as the real program's serve --roles edge does).
func startEdge(t *testing.T, upstream, token, dir string) *platform.Edge {
	t.Helper()
	cfg, err := config.Parse("edge", []string{"--roles", "edge", "--upstream", upstream, "--edge-token", token,
		"--edge-dir", dir, "--http-addr", "127.0.0.1:0", "--sse-heartbeat", "2s"}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	e, err := platform.StartEdge(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// call sends a request to base with an SDK key and returns status and body.
func call(t *testing.T, method, url, key, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// bulk is the OFREP bulk answer for ctx, decoded (flags sorted by key), or nil with the failure.
func bulk(t *testing.T, base, key, ctx string) (any, string) {
	status, body := call(t, "POST", base+"/ofrep/v1/evaluate/flags", key, `{"context":`+ctx+`}`)
	if status != 200 {
		return nil, fmt.Sprintf("%d %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err.Error()
	}
	flags, _ := m["flags"].([]any)
	slices.SortFunc(flags, func(a, b any) int {
		return strings.Compare(fmt.Sprint(a.(map[string]any)["key"]), fmt.Sprint(b.(map[string]any)["key"]))
	})
	return flags, ""
}

// TestCoreAndTwoEdges is issue 19's edge test: a core and two edges on loopback. The edges answer
// OFREP as the core does for a fixture of contexts; a change at the core reaches both edges'
// OFREP and SSE clients (latencies logged; the load tool holds the speed goal, tests assert only
// generous deadlines); with the core stopped both edges keep serving with no failed evaluation
// and accept events, which reach the core exactly once after it comes back; an edge restarted
// while the core is down serves from its snapshot file.
func TestCoreAndTwoEdges(t *testing.T) {
	t.Parallel()
	core := &edgeCore{t: t, db: pgtest.NewDatabase(t), redis: redistest.URL(), prefix: redistest.NewPrefix(t), addr: "127.0.0.1:0"}
	core.start()
	keys := core.tv.CreateProject("shop", "checkout", "dark-mode", "banner")
	core.tv.Must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production", map[string]any{
		"on": true, "off_variation": "false",
		"rules": []any{map[string]any{"clauses": []any{map[string]any{"attribute": "plan", "op": "in", "values": []any{"pro"}}},
			"serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"split": map[string]any{"variations": []any{
			map[string]any{"variation": "true", "weight": 50000}, map[string]any{"variation": "false", "weight": 50000}}}}})
	core.tv.Must(200, "POST", "/api/v1/projects/shop/flags/banner/environments/production/toggle", map[string]any{"on": true})

	// The edge token: made for edges, narrowed to production; useless on the management API,
	// and the management tokens are useless on the edge routes.
	tok := core.tv.Must(201, "POST", "/api/v1/tokens", map[string]any{"name": "edge eu", "scope": "edge",
		"project": "shop", "environments": []string{"production"}})
	edgeToken := tok["token"].(string)
	if r := core.tv.Do("GET", "/api/v1/projects/shop/flags", edgeToken, nil); r.Status != 403 {
		t.Fatalf("edge token on the management API: %d %s", r.Status, r.Body)
	}
	if r := core.tv.Do("GET", "/edge/v1/mirror", adminToken, nil); r.Status != 403 {
		t.Fatalf("admin token on the edge mirror: %d %s", r.Status, r.Body)
	}
	mirror := core.tv.Do("GET", "/edge/v1/mirror", edgeToken, nil)
	if mirror.Status != 200 || mirror.Header.Get("ETag") == "" || strings.Contains(string(mirror.Body), `"development"`) {
		t.Fatalf("mirror of production only: %d etag %q %s", mirror.Status, mirror.Header.Get("ETag"), mirror.Body)
	}
	if r := core.tv.Do("GET", "/edge/v1/mirror", edgeToken, nil, "If-None-Match", mirror.Header.Get("ETag")); r.Status != 304 {
		t.Fatalf("conditional mirror: %d", r.Status)
	}

	upstream := "http://" + core.addr
	dirA, dirB := t.TempDir(), t.TempDir()
	edges := []*platform.Edge{startEdge(t, upstream, edgeToken, dirA), startEdge(t, upstream, edgeToken, dirB)}
	bases := func() []string { return []string{"http://" + edges[0].Addr, "http://" + edges[1].Addr} }
	for _, b := range bases() {
		ingesttest.WaitFor(t, 10*time.Second, "the edge to serve", func() bool {
			s, _ := call(t, "GET", b+"/ofrep/v1/configuration", keys.Server, "")
			return s == 200
		})
	}

	// A fixture of contexts: OFREP answers of the edges equal the core's.
	var contexts []string
	for i := range 60 {
		plan := []string{"free", "pro", "team"}[i%3]
		contexts = append(contexts, fmt.Sprintf(`{"targetingKey":"user-%d","plan":%q}`, i, plan))
	}
	coreAnswers := make([]any, len(contexts))
	for i, ctx := range contexts {
		var fail string
		if coreAnswers[i], fail = bulk(t, core.tv.Base, keys.Server, ctx); fail != "" {
			t.Fatalf("core bulk evaluation: %s", fail)
		}
	}
	checkEdges := func(what string) {
		t.Helper()
		for _, b := range bases() {
			for i, ctx := range contexts {
				got, fail := bulk(t, b, keys.Server, ctx)
				if fail != "" {
					t.Fatalf("%s: edge %s failed an evaluation: %s", what, b, fail)
				}
				if !reflect.DeepEqual(got, coreAnswers[i]) {
					t.Fatalf("%s: edge %s answers %v for %s; the core answered %v", what, b, got, ctx, coreAnswers[i])
				}
			}
		}
	}
	checkEdges("core up")
	for _, b := range bases() {
		if s, body := call(t, "GET", b+"/sdk/v1/ruleset", keys.Client, ""); s != 403 {
			t.Fatalf("edge ruleset with a client key: %d %s", s, body)
		}
		if s, _ := call(t, "GET", b+"/ofrep/v1/configuration", "server-unknown", ""); s != 401 {
			t.Fatalf("edge with an unknown key: %d", s)
		}
	}

	// Changes at the core reach both edges' OFREP and SSE clients.
	type stamped struct {
		sseEvent
		at time.Time
	}
	type sseClient struct{ events <-chan stamped }
	var clients []sseClient
	for _, b := range bases() {
		raw := openStream(t, b+"/sdk/v1/stream", "", "Authorization", "Bearer "+keys.Server)
		events := make(chan stamped, 64)
		go func() {
			defer close(events)
			for ev := range raw {
				events <- stamped{ev, time.Now()}
			}
		}()
		clients = append(clients, sseClient{events})
	}
	var ofrepDelays, sseDelays, writes []time.Duration
	on := false
	for round := range 10 {
		on = !on
		sentAt := time.Now()
		core.tv.Must(200, "POST", "/api/v1/projects/shop/flags/dark-mode/environments/production/toggle", map[string]any{"on": on})
		// From the write's answer: the core answers once its own read models have the change
		// (read-your-writes), which is when the change exists for anyone to serve.
		changed := time.Now()
		writes = append(writes, changed.Sub(sentAt))
		for i, b := range bases() {
			ingesttest.WaitFor(t, 10*time.Second, fmt.Sprintf("round %d: edge %d to serve dark-mode %v", round, i, on), func() bool {
				s, body := call(t, "POST", b+"/ofrep/v1/evaluate/flags/dark-mode", keys.Server, `{"context":{"targetingKey":"u"}}`)
				return s == 200 && strings.Contains(string(body), fmt.Sprintf(`"value":%v`, on))
			})
			ofrepDelays = append(ofrepDelays, time.Since(changed))
		}
		for i, c := range clients {
			select {
			case ev, ok := <-c.events:
				if !ok || !strings.Contains(ev.data, `"dark-mode"`) {
					t.Fatalf("round %d: edge %d's SSE client got %+v (open %v)", round, i, ev, ok)
				}
				sseDelays = append(sseDelays, ev.at.Sub(changed))
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: edge %d's SSE client heard nothing", round, i)
			}
		}
	}
	slices.Sort(ofrepDelays)
	slices.Sort(sseDelays)
	slices.Sort(writes)
	// Negative SSE delays: the edge's client heard of the change before the core's write answered.
	t.Logf("change at the core to the edges (20 samples, from the write's answer): OFREP p50 %v max %v; SSE p50 %v max %v; the writes took p50 %v max %v",
		ofrepDelays[len(ofrepDelays)/2], ofrepDelays[len(ofrepDelays)-1], sseDelays[len(sseDelays)/2], sseDelays[len(sseDelays)-1],
		writes[len(writes)/2], writes[len(writes)-1])
	for i, ctx := range contexts { // the answers with dark-mode as it is now
		coreAnswers[i], _ = bulk(t, core.tv.Base, keys.Server, ctx)
	}
	checkEdges("after the changes")

	// The core stops: both edges keep serving, and take events.
	core.stop()
	for _, e := range edges {
		ingesttest.WaitFor(t, 10*time.Second, "the edge to notice the core is down", func() bool { return e.Edge.Health().Upstream == "down" })
	}
	checkEdges("core down")
	for i, b := range bases() {
		// Degraded, not unready: an edge with a mirror stays in its load balancer.
		s, body := call(t, "GET", b+"/readyz", "", "")
		if s != 200 || !strings.Contains(string(body), `"status":"degraded"`) {
			t.Fatalf("edge %d /readyz with the core down: %d %s", i, s, body)
		}
	}
	sent := 0
	for i, b := range bases() {
		for range 3 {
			body, _ := json.Marshal(ingesttest.Events("checkout", 20, 7, sent))
			if s, answer := call(t, "POST", b+"/sdk/v1/events", keys.Server, string(body)); s != 202 {
				t.Fatalf("edge %d took no events with the core down: %d %s", i, s, answer)
			}
			sent += 20
		}
	}
	if edges[0].Edge.Health().SpoolBatches == 0 {
		t.Fatal("edge 0 spooled nothing while the core was down")
	}

	// Edge 0 restarts while the core is down: it serves from its snapshot file, and keeps its spool.
	// One of its spooled batches is there twice, as after a forward whose answer was lost (the
	// core stored it, the edge did not hear so): it must still be stored once.
	edges[0].Close()
	spooled, err := filepath.Glob(filepath.Join(dirA, "spool", "*.batch"))
	if err != nil || len(spooled) == 0 {
		t.Fatalf("edge 0's spool: %v %v", spooled, err)
	}
	dup, err := os.ReadFile(spooled[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "spool", "00000000000000099999.batch"), dup, 0o600); err != nil {
		t.Fatal(err)
	}
	edges[0] = startEdge(t, upstream, edgeToken, dirA)
	if h := edges[0].Edge.Health(); !h.Serving || h.Upstream != "down" || h.SpoolBatches == 0 {
		t.Fatalf("edge restarted with the core down: %+v", h)
	}
	checkEdges("edge restarted with the core down")
	body, _ := json.Marshal(ingesttest.Events("checkout", 20, 7, sent))
	if s, answer := call(t, "POST", bases()[0]+"/sdk/v1/events", keys.Server, string(body)); s != 202 {
		t.Fatalf("restarted edge took no events: %d %s", s, answer)
	}
	sent += 20

	// The core comes back: every event arrives, once.
	core.start()
	for i, e := range edges {
		ingesttest.WaitFor(t, 30*time.Second, fmt.Sprintf("edge %d to forward its spool", i), func() bool {
			h := e.Edge.Health()
			return h.Upstream == "up" && h.SpoolBatches == 0
		})
	}
	ingesttest.WaitFor(t, 30*time.Second, "the edges' events to be stored at the core", func() bool {
		return core.tv.Count(`SELECT count(*) FROM evaluation_events WHERE user_key IS NOT NULL`) >= int64(sent)
	})
	if n := core.tv.Count(`SELECT count(*) FROM evaluation_events WHERE user_key IS NOT NULL`); n != int64(sent) {
		t.Fatalf("%d events stored at the core; the edges accepted %d", n, sent)
	}
	// A change after the core's return reaches the edges again.
	core.tv.Must(200, "POST", "/api/v1/projects/shop/flags/banner/environments/production/toggle", map[string]any{"on": false})
	for i, b := range bases() {
		ingesttest.WaitFor(t, 15*time.Second, fmt.Sprintf("edge %d to follow the core again", i), func() bool {
			s, body := call(t, "POST", b+"/ofrep/v1/evaluate/flags/banner", keys.Server, `{"context":{"targetingKey":"u"}}`)
			return s == 200 && strings.Contains(string(body), `"value":false`)
		})
	}
}
