package sdkapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// Tests of the SSE stream and the client ETag over in-memory snapshots: install and setKeys are
// what Snapshots.refresh and reloadKeys do once they have read the read models.

const (
	testClientKey = "client-streamtest0000000000000"
	testServerKey = "server-streamtest0000000000000"
	testProject   = "shop"
	testEnv       = "production"
)

// testRuleset is an environment with client-side flags (banner, which uses segment beta; gated,
// whose prerequisite is the server-only flag ops-mode) and server-only ones (ops-mode, and
// ops-limit, which uses segment staff).
type testRuleset struct {
	version  int64
	flags    map[string]*domain.FlagConfig
	segments map[string]*domain.Segment
}

func newTestRuleset() *testRuleset {
	boolFlag := func(key string, clientSide bool) *domain.FlagConfig {
		return &domain.FlagConfig{Key: key, Type: domain.FlagBoolean, Salt: key, ClientSide: clientSide, Version: 1,
			Variations: []domain.Variation{{Key: "on", Value: true}, {Key: "off", Value: false}},
			Targeting:  domain.Targeting{On: true, OffVariation: "off", Default: domain.Serve{Variation: "on"}}}
	}
	inSegment := func(seg string) []domain.Rule {
		return []domain.Rule{{ID: "r1", Clauses: []domain.Clause{{Operator: domain.OpInSegment, Values: []any{seg}}},
			Serve: domain.Serve{Variation: "off"}}}
	}
	rs := &testRuleset{version: 10, flags: map[string]*domain.FlagConfig{}, segments: map[string]*domain.Segment{}}
	rs.flags["banner"] = boolFlag("banner", true)
	rs.flags["banner"].Targeting.Rules = inSegment("beta")
	rs.flags["gated"] = boolFlag("gated", true)
	rs.flags["gated"].Targeting.Prerequisites = []domain.Prerequisite{{Flag: "ops-mode", Variation: "on"}}
	rs.flags["ops-mode"] = boolFlag("ops-mode", false)
	rs.flags["ops-limit"] = boolFlag("ops-limit", false)
	rs.flags["ops-limit"].Targeting.Rules = inSegment("staff")
	rs.segments["beta"] = &domain.Segment{Project: testProject, Key: "beta", Match: domain.MatchAll, Included: []string{"u1"}, Version: 1}
	rs.segments["staff"] = &domain.Segment{Project: testProject, Key: "staff", Match: domain.MatchAll, Included: []string{"u2"}, Version: 1}
	return rs
}

// ruleset is the current state as the read model serves it (fresh values: snapshots keep them).
func (r *testRuleset) ruleset() *domain.Ruleset {
	out := &domain.Ruleset{Project: testProject, Environment: testEnv, Version: r.version,
		Flags: map[string]*domain.FlagConfig{}, Segments: map[string]*domain.Segment{}}
	for k, f := range r.flags {
		c := *f
		c.Targeting.Rules = slices.Clone(f.Targeting.Rules)
		out.Flags[k] = &c
	}
	for k, s := range r.segments {
		c := *s
		c.Included = slices.Clone(s.Included)
		out.Segments[k] = &c
	}
	return out
}

// toggle turns a flag off as a management write would: its configuration and version move.
func (r *testRuleset) toggle(flag string) {
	f := *r.flags[flag]
	f.Targeting.On = !f.Targeting.On
	f.Version++
	r.flags[flag] = &f
}

// include adds a user to a segment.
func (r *testRuleset) include(segment, user string) {
	s := *r.segments[segment]
	s.Included = append(slices.Clone(s.Included), user)
	s.Version++
	r.segments[segment] = &s
}

type streamFixture struct {
	t     *testing.T
	snaps *Snapshots
	rs    *testRuleset
	base  string
	srv   *Server
}

func newStreamFixture(t *testing.T) *streamFixture {
	t.Helper()
	return newStreamFixtureWith(t, Options{Heartbeat: time.Hour})
}

func newStreamFixtureWith(t *testing.T, opts Options) *streamFixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	snaps := NewSnapshots(nil, log, newCounterFlusher(nil, reg, log))
	f := &streamFixture{t: t, snaps: snaps, rs: newTestRuleset()}
	f.publish()
	snaps.setKeys(map[string]access.SDKKey{
		testClientKey: {Project: testProject, Environment: testEnv, Kind: domain.ClientSideKey},
		testServerKey: {Project: testProject, Environment: testEnv, Kind: domain.ServerSideKey},
	})
	srv := New(snaps, log, reg, opts)
	f.srv = srv
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Use(httpapi.Recover(log), httpapi.Requests(log, nil))
	srv.Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	f.base = ts.URL
	return f
}

// publish installs the current test ruleset under the next version.
func (f *streamFixture) publish() {
	f.t.Helper()
	id := envID{testProject, testEnv}
	if err := f.snaps.install(f.snaps.environment(id, true), id, f.rs.ruleset()); err != nil {
		f.t.Fatal(err)
	}
	f.rs.version++
}

type testEvent struct {
	id   string
	data streamEvent
	raw  string
}

// open connects a stream; its events arrive on the channel, which is closed when the stream ends.
func (f *streamFixture) open(query, lastEventID string, headers ...string) <-chan testEvent {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/sdk/v1/stream"+query, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		f.t.Fatalf("stream%s: %d %s", query, res.StatusCode, b)
	}
	out := make(chan testEvent, 16)
	go func() {
		defer res.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var ev testEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && ev.raw != "":
				if err := json.Unmarshal([]byte(ev.raw), &ev.data); err != nil {
					ev.data.Type = "undecodable: " + err.Error()
				}
				out <- ev
				ev = testEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.raw = line[6:]
			}
		}
	}()
	return out
}

func (f *streamFixture) openClient(lastEventID string) <-chan testEvent {
	return f.open("?key="+testClientKey, lastEventID)
}

func (f *streamFixture) openServer(lastEventID string) <-chan testEvent {
	return f.open("", lastEventID, "Authorization", "Bearer "+testServerKey)
}

// next is the next event; the deadline only bounds a failing test.
func next(t *testing.T, events <-chan testEvent) testEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return testEvent{}
}

func wantEvent(t *testing.T, ev testEvent, typ, id string, flags []string) {
	t.Helper()
	if ev.data.Type != typ || ev.id != id || !slices.Equal(ev.data.Flags, flags) || (flags == nil) != strings.Contains(ev.raw, `"flags":null`) {
		t.Fatalf("event id %s %s, want %s id %s flags %q", ev.id, ev.raw, typ, id, flags)
	}
}

func TestStreamRefusesServerKeysInTheURL(t *testing.T) {
	f := newStreamFixture(t)
	res, err := http.Get(f.base + "/sdk/v1/stream?key=" + testServerKey)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 401 || !strings.Contains(string(body), "Authorization") || !strings.Contains(string(body), "unauthorized") {
		t.Fatalf("server key in the URL: %d %s", res.StatusCode, body)
	}
	// Even with a valid header: the secret is in the URL all the same.
	req, _ := http.NewRequest("GET", f.base+"/sdk/v1/stream?key="+testServerKey, nil)
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("server key in the URL beside a header: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// The ways that stay open: a client key in the URL, a server key in the header.
	client, server := f.openClient(""), f.openServer("")
	f.rs.toggle("banner")
	f.publish()
	wantEvent(t, next(t, client), "refetchEvaluation", "11", []string{"banner"})
	wantEvent(t, next(t, server), "rulesetChanged", "11", []string{"banner"})
}

func TestStreamsEndWhenTheirKeyStopsBeingValid(t *testing.T) {
	f := newStreamFixture(t)
	client, server := f.openClient(""), f.openServer("")
	otherClient := f.open("", "", "X-API-Key", testClientKey)
	waitForStreams(t, f.snaps, 3)
	// The client key is rotated: its streams end, the server key's stays.
	const rotated = "client-rotated0000000000000000"
	start := time.Now()
	f.snaps.setKeys(map[string]access.SDKKey{
		rotated:       {Project: testProject, Environment: testEnv, Kind: domain.ClientSideKey},
		testServerKey: {Project: testProject, Environment: testEnv, Kind: domain.ServerSideKey},
	})
	for _, events := range []<-chan testEvent{client, otherClient} {
		select {
		case ev, ok := <-events:
			if ok {
				t.Fatalf("an event instead of the end: %+v", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream of a rotated key is still open after 10s")
		}
	}
	t.Logf("streams of the rotated key ended %v after the new keys were set", time.Since(start))
	f.rs.toggle("banner")
	f.publish()
	wantEvent(t, next(t, server), "rulesetChanged", "11", []string{"banner"})
	if res, err := http.Get(f.base + "/sdk/v1/stream?key=" + testClientKey); err != nil || res.StatusCode != 401 {
		t.Fatalf("the rotated key opens a stream: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// A key that now names another environment (its environment gone and the key reissued, say)
	// no longer serves this one's stream either.
	rotatedStream := f.open("?key="+rotated, "")
	waitForStreams(t, f.snaps, 2)
	f.snaps.setKeys(map[string]access.SDKKey{
		rotated: {Project: testProject, Environment: "staging", Kind: domain.ClientSideKey},
	})
	for _, events := range []<-chan testEvent{rotatedStream, server} {
		select {
		case _, ok := <-events:
			if ok {
				t.Fatal("an event instead of the end")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stream whose key left its environment is still open after 10s")
		}
	}
}

// waitForStreams checks that n streams are subscribed. A stream joins its hub before it answers
// its headers, which open waits for, and leaves before its body ends, which the tests read to
// the end: the count is exact at these points, no waiting needed.
func waitForStreams(t *testing.T, s *Snapshots, n int) {
	t.Helper()
	if got := s.environment(envID{testProject, testEnv}, false).hub.count(); got != n {
		t.Fatalf("%d streams subscribed, want %d", got, n)
	}
}

func TestClientStreamsOnlyHearOfClientVisibleChanges(t *testing.T) {
	f := newStreamFixture(t)
	client, server := f.openClient(""), f.openServer("")

	// 11: a server-only flag, and 12: a segment only that flag uses. Server streams hear both.
	f.rs.toggle("ops-limit")
	f.publish()
	wantEvent(t, next(t, server), "rulesetChanged", "11", []string{"ops-limit"})
	f.rs.include("staff", "u9")
	f.publish()
	wantEvent(t, next(t, server), "rulesetChanged", "12", []string{})
	// 13: a client-side flag. The first event the client stream receives is this one: it was not
	// told of 11 or 12 (events are written in order, so one for 11 or 12 would come first).
	f.rs.toggle("banner")
	f.publish()
	wantEvent(t, next(t, client), "refetchEvaluation", "13", []string{"banner"})
	wantEvent(t, next(t, server), "rulesetChanged", "13", []string{"banner"})

	// 14: the server-only prerequisite of a client-side flag moves that flag's answers: the
	// client is told, naming the client-side flag only.
	f.rs.toggle("ops-mode")
	f.publish()
	ev := next(t, client)
	wantEvent(t, ev, "refetchEvaluation", "14", []string{"gated"})
	if strings.Contains(ev.raw, "ops-mode") {
		t.Fatalf("a client stream names a server-only flag: %s", ev.raw)
	}
	// 15: a segment a client-side flag uses.
	f.rs.include("beta", "u7")
	f.publish()
	wantEvent(t, next(t, client), "refetchEvaluation", "15", []string{"banner"})
	// 16: a server-only flag becomes client-side: client keys now see it.
	f.rs.flags["ops-limit"].ClientSide = true
	f.rs.flags["ops-limit"].Version++
	f.publish()
	wantEvent(t, next(t, client), "refetchEvaluation", "16", []string{"ops-limit"})
}

func TestClientETagOnlyMovesForClientVisibleChanges(t *testing.T) {
	f := newStreamFixture(t)
	bulk := func(key, ifNoneMatch string) (int, string, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", f.base+"/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{"targetingKey":"u1"}}`))
		req.Header.Set("Authorization", "Bearer "+key)
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		if res.StatusCode == 200 {
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return res.StatusCode, res.Header.Get("ETag"), body
	}
	status, clientTag, body := bulk(testClientKey, "")
	_, serverTag, _ := bulk(testServerKey, "")
	if status != 200 || clientTag == "" || serverTag == "" || clientTag == serverTag {
		t.Fatalf("first answers: %d client %q server %q", status, clientTag, serverTag)
	}
	if md := body["metadata"].(map[string]any); md["version"] != nil || md["clientVersion"] == nil {
		t.Fatalf("a client answer's metadata %v: it must not carry the ruleset version, which moves for changes it cannot see", md)
	}
	// A server-only flag and a segment only it uses change: the client ETag stays (304), the
	// server one moves.
	f.rs.toggle("ops-limit")
	f.publish()
	f.rs.include("staff", "u9")
	f.publish()
	if status, tag, _ := bulk(testClientKey, clientTag); status != 304 || tag != clientTag {
		t.Fatalf("client bulk after server-only changes: %d ETag %q, want 304 with %q", status, tag, clientTag)
	}
	if status, tag, _ := bulk(testServerKey, serverTag); status != 200 || tag == serverTag {
		t.Fatalf("server bulk after server-only changes: %d ETag %q (was %q)", status, tag, serverTag)
	}
	// A client-side flag changes: the client ETag moves.
	f.rs.toggle("banner")
	f.publish()
	status, moved, _ := bulk(testClientKey, clientTag)
	if status != 200 || moved == clientTag {
		t.Fatalf("client bulk after a client-visible change: %d ETag %q (was %q)", status, moved, clientTag)
	}
	// The client ETag is the content's, not this process's: another process that loads the
	// same ruleset (a replica, a restart) computes the same one.
	other := newStreamFixture(t)
	other.rs = f.rs
	other.rs.version--
	other.publish()
	req, _ := http.NewRequest("POST", other.base+"/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{"targetingKey":"u1"}}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	req.Header.Set("If-None-Match", moved)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 304 {
		t.Fatalf("another process answers %d to the same client ETag %s", res.StatusCode, moved)
	}
}

func TestResumeAfterLastEventIDListsEveryChange(t *testing.T) {
	f := newStreamFixture(t)
	// 11 banner, 12 ops-limit (server-only), 13 gated (client-side), 14 the staff segment.
	f.rs.toggle("banner")
	f.publish()
	f.rs.toggle("ops-limit")
	f.publish()
	f.rs.toggle("gated")
	f.publish()
	f.rs.include("staff", "u9")
	f.publish()

	wantEvent(t, next(t, f.openServer("10")), "rulesetChanged", "14", []string{"banner", "gated", "ops-limit"})
	wantEvent(t, next(t, f.openClient("10")), "refetchEvaluation", "14", []string{"banner", "gated"})
	wantEvent(t, next(t, f.openServer("12")), "rulesetChanged", "14", []string{"gated"})
	wantEvent(t, next(t, f.openClient("11")), "refetchEvaluation", "14", []string{"gated"})
	// Older than the history this process holds (it started at 10), or not a version: refetch
	// everything.
	wantEvent(t, next(t, f.openServer("7")), "rulesetChanged", "14", nil)
	wantEvent(t, next(t, f.openClient("garbage")), "refetchEvaluation", "14", nil)

	// Nothing missed: no catch-up event. The first event is the next change, 15.
	upToDate, clientMissedNothing := f.openServer("14"), f.openClient("13") // 14 is invisible to clients
	waitForStreams(t, f.snaps, 8)
	f.rs.toggle("banner")
	f.publish()
	wantEvent(t, next(t, upToDate), "rulesetChanged", "15", []string{"banner"})
	wantEvent(t, next(t, clientMissedNothing), "refetchEvaluation", "15", []string{"banner"})
}

// A subscriber that does not keep up is told every flag in one event, not only the latest.
func TestSlowSubscriberGetsEveryFlagMerged(t *testing.T) {
	h := newHub()
	h.publish(change{version: 10, etag: `"10"`})
	s := h.subscribe("k", domain.ServerSideKey, "")
	h.publish(change{from: 10, version: 11, etag: `"11"`, flags: []string{"b"}})
	h.publish(change{from: 11, version: 12, etag: `"12"`, flags: []string{"a", "b"}})
	h.publish(change{from: 12, version: 13, etag: `"13"`})
	n, ok := s.take()
	if !ok || n.version != 13 || n.etag != `"13"` || n.all || !slices.Equal(n.flags, []string{"a", "b"}) {
		t.Fatalf("merged notice %+v", n)
	}
}
