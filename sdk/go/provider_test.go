package vexil_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"go.uber.org/goleak"

	"github.com/vexil-flags/vexil/domain"
	vexil "github.com/vexil-flags/vexil/sdk/go"
	"github.com/vexil-flags/vexil/services/testkit"
)

// waitFor is the platform's shared poll-with-deadline (testkit.WaitFor) with this package's
// 10-second bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, what, cond)
}

var bg = context.Background()

func pro(user string) openfeature.FlattenedContext {
	return openfeature.FlattenedContext{openfeature.TargetingKey: user, "plan": "pro"}
}

// All five types, reasons, variants, metadata and error codes of a locally evaluated ruleset.
func TestProviderEvaluatesLocallyAllTypes(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, nil)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	if p.Status() != openfeature.ReadyState {
		t.Fatalf("status %s after Init", p.Status())
	}
	b := p.BooleanEvaluation(bg, "new-checkout", false, pro("u1"))
	if !b.Value || b.Reason != openfeature.TargetingMatchReason || b.Variant != "true" || b.Error() != nil {
		t.Fatalf("pro: %+v", b)
	}
	if id, _ := b.FlagMetadata.GetString("ruleId"); id != "rule-1" {
		t.Fatalf("ruleId metadata: %v", b.FlagMetadata)
	}
	if v, _ := b.FlagMetadata.GetFloat("flagVersion"); v != 3 {
		t.Fatalf("flagVersion metadata: %v", b.FlagMetadata)
	}
	b = p.BooleanEvaluation(bg, "new-checkout", true, openfeature.FlattenedContext{openfeature.TargetingKey: "u1", "plan": "free"})
	if b.Value || b.Reason != openfeature.DefaultReason || b.Variant != "false" {
		t.Fatalf("free: %+v", b)
	}
	s := p.StringEvaluation(bg, "banner", "x", pro("u1"))
	if s.Reason != openfeature.SplitReason || (s.Value != "Welcome" && s.Value != "Welcome back") {
		t.Fatalf("experiment split: %+v", s)
	}
	if e, _ := s.FlagMetadata.GetString("experiment"); e != "banner-test" {
		t.Fatalf("experiment metadata: %v", s.FlagMetadata)
	}
	if fl := p.FloatEvaluation(bg, "max-items", 1, pro("u1")); fl.Value != 10 || fl.Variant != "few" {
		t.Fatalf("float: %+v", fl)
	}
	if i := p.IntEvaluation(bg, "max-items", 1, pro("u1")); i.Value != 10 || i.Error() != nil {
		t.Fatalf("int: %+v", i)
	}
	o := p.ObjectEvaluation(bg, "layout", nil, pro("u1"))
	if m, ok := o.Value.(map[string]any); !ok || m["cols"] != 2.0 {
		t.Fatalf("object: %+v", o)
	}
	// Off without an off variation: the code default, reason DISABLED, no variant.
	if d := p.BooleanEvaluation(bg, "dark", true, pro("u1")); !d.Value || d.Reason != openfeature.DisabledReason || d.Variant != "" || d.Error() != nil {
		t.Fatalf("disabled: %+v", d)
	}
	errCode := func(d openfeature.ProviderResolutionDetail) openfeature.ErrorCode {
		return d.ResolutionDetail().ErrorCode
	}
	if d := p.StringEvaluation(bg, "new-checkout", "x", pro("u1")); d.Value != "x" || errCode(d.ProviderResolutionDetail) != openfeature.TypeMismatchCode {
		t.Fatalf("type mismatch: %+v", d)
	}
	if d := p.BooleanEvaluation(bg, "nope", true, pro("u1")); !d.Value || errCode(d.ProviderResolutionDetail) != openfeature.FlagNotFoundCode ||
		d.Reason != openfeature.ErrorReason {
		t.Fatalf("not found: %+v", d)
	}
	if d := p.StringEvaluation(bg, "banner", "x", openfeature.FlattenedContext{"plan": "pro"}); d.Value != "Welcome" || d.Reason != openfeature.DefaultReason {
		// No targeting key: not an experiment unit, the flag's default serve.
		t.Fatalf("no targeting key: %+v", d)
	}
	if d := p.BooleanEvaluation(bg, "new-checkout", false, openfeature.FlattenedContext{openfeature.TargetingKey: 7}); errCode(d.ProviderResolutionDetail) != openfeature.InvalidContextCode {
		t.Fatalf("non-string targeting key: %+v", d)
	}
	f.change(func(rs *domain.Ruleset) {
		rs.Flags["max-items"].Targeting.Default.Variation = "half"
		rs.Flags["max-items"].Version++
	})
	waitFor(t, "the change", func() bool { return p.FloatEvaluation(bg, "max-items", 1, pro("u1")).Value == 2.5 })
	if i := p.IntEvaluation(bg, "max-items", 1, pro("u1")); i.Value != 1 || errCode(i.ProviderResolutionDetail) != openfeature.TypeMismatchCode {
		t.Fatalf("2.5 as an int: %+v", i)
	}
}

// SSE: a change is downloaded (If-None-Match), reported with its flag keys; a lost stream is
// reconnected with Last-Event-ID.
func TestProviderFollowsTheStream(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.PollInterval = time.Hour })
	events := collect(t, p)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream", func() bool { return f.get(func(f *fakeServer) int { return len(f.subscribers) }) == 1 })
	// On connecting, the provider downloads once more, with If-None-Match: a 304.
	waitFor(t, "the download on connect", func() bool { return f.get(func(f *fakeServer) int { return f.notModified }) >= 1 })
	f.change(func(rs *domain.Ruleset) {
		rs.Flags["new-checkout"].Targeting.Default.Variation = "true"
		rs.Flags["new-checkout"].Version++
	})
	waitFor(t, "the change", func() bool { return p.BooleanEvaluation(bg, "new-checkout", false, nil).Value })
	waitFor(t, "CONFIGURATION_CHANGED naming the flag", func() bool {
		return events.has(openfeature.ProviderConfigChange, func(e openfeature.Event) bool {
			return slices.Equal(e.FlagChanges, []string{"new-checkout"})
		})
	})
	// The server drops every stream: the provider comes back with the last event id.
	f.srv.CloseClientConnections()
	waitFor(t, "the reconnect", func() bool { return f.get(func(f *fakeServer) int { return f.streamsOpened }) >= 2 })
	f.mu.Lock()
	ids := slices.Clone(f.lastEventIDs)
	f.mu.Unlock()
	if ids[0] != "" || ids[1] != "2" {
		t.Fatalf("Last-Event-ID of the streams: %q, want [\"\" \"2\" ...]", ids)
	}
	// A segment change names the flags that read segments (none here) but still updates.
	f.change(func(rs *domain.Ruleset) { rs.Flags["dark"].Targeting.On = true; rs.Flags["dark"].Version++ })
	waitFor(t, "a change after the reconnect", func() bool { return p.BooleanEvaluation(bg, "dark", false, nil).Value })
}

// A server without the stream is polled.
func TestProviderPollsWithoutAStream(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	f.set(func(f *fakeServer) { f.streamStatus = http.StatusNotFound })
	p := newTestProvider(t, f.srv.URL, nil)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	f.change(func(rs *domain.Ruleset) { rs.Flags["dark"].Targeting.On = true; rs.Flags["dark"].Version++ })
	waitFor(t, "the change by polling", func() bool { return p.BooleanEvaluation(bg, "dark", false, nil).Value })
	waitFor(t, "a poll answered 304 (If-None-Match)", func() bool { return f.get(func(f *fakeServer) int { return f.notModified }) >= 1 })
	if n := f.get(func(f *fakeServer) int { return f.streamsOpened }); n != 0 {
		t.Fatalf("%d streams opened on a server without one", n)
	}
}

// Server down: the last ruleset keeps serving, the provider is STALE; back up: READY, and a
// change made meanwhile arrives, without the application doing anything.
func TestProviderStaleAndRecovers(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, nil)
	events := collect(t, p)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeServer) { f.down = true })
	f.srv.CloseClientConnections()
	waitFor(t, "STALE", func() bool { return events.has(openfeature.ProviderStale, nil) })
	if p.Status() != openfeature.StaleState {
		t.Fatalf("status %s", p.Status())
	}
	if b := p.BooleanEvaluation(bg, "new-checkout", false, pro("u1")); !b.Value || b.Reason != openfeature.TargetingMatchReason {
		t.Fatalf("last ruleset not served while down: %+v", b)
	}
	f.set(func(f *fakeServer) {
		f.down = false
		f.rs.Flags["dark"].Targeting.On = true
		f.rs.Version++
	})
	waitFor(t, "READY again", func() bool { return events.has(openfeature.ProviderReady, nil) && p.Status() == openfeature.ReadyState })
	waitFor(t, "the change made while down", func() bool { return p.BooleanEvaluation(bg, "dark", false, nil).Value })
}

// Unreachable at start: the bootstrap file serves, the provider is STALE, then the server's
// ruleset takes over. SaveBootstrap writes what was downloaded.
func TestProviderBootstrapFile(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	dir := t.TempDir()
	file := filepath.Join(dir, "ruleset.json")
	// Save one from a provider that reaches the server.
	saver := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.BootstrapFile, o.SaveBootstrap = file, true })
	if err := saver.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	saver.Shutdown()
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("bootstrap file not saved: %v", err)
	}
	f.set(func(f *fakeServer) { f.down = true })
	p := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.BootstrapFile, o.InitTimeout = file, 200*time.Millisecond })
	events := collect(t, p)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatalf("Init with a bootstrap file: %v", err)
	}
	if p.Status() != openfeature.StaleState {
		t.Fatalf("status %s from the bootstrap file", p.Status())
	}
	if b := p.BooleanEvaluation(bg, "new-checkout", false, pro("u1")); !b.Value {
		t.Fatalf("bootstrap ruleset not served: %+v", b)
	}
	f.set(func(f *fakeServer) { f.down = false })
	waitFor(t, "READY from the server", func() bool { return p.Status() == openfeature.ReadyState && events.has(openfeature.ProviderReady, nil) })

	// Without a bootstrap file and without a server, Init fails, and the provider becomes ready
	// later by itself.
	f.set(func(f *fakeServer) { f.down = true })
	q := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.InitTimeout = 100 * time.Millisecond })
	if err := q.Init(openfeature.EvaluationContext{}); err == nil {
		t.Fatal("Init succeeded with neither server nor bootstrap file")
	}
	if d := q.BooleanEvaluation(bg, "new-checkout", false, pro("u1")); d.ResolutionDetail().ErrorCode != openfeature.ProviderNotReadyCode {
		t.Fatalf("before any ruleset: %+v", d)
	}
	f.set(func(f *fakeServer) { f.down = false })
	waitFor(t, "a late first ruleset", func() bool { return q.BooleanEvaluation(bg, "new-checkout", false, pro("u1")).Value })
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Exposures and Track goals are batched with event ids and times; a 429 and a 503 with
// Retry-After are retried (same ids, stored once); Shutdown flushes.
func TestProviderSendsExposuresAndGoals(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	f.set(func(f *fakeServer) { f.eventsFail = 2 })
	p := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.EventBatchSize = 7 })
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	users := 40
	for i := 0; i < users; i++ {
		user := "user-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		for j := 0; j < 3; j++ { // evaluated again: one exposure per user
			p.StringEvaluation(bg, "banner", "x", pro(user))
		}
		p.BooleanEvaluation(bg, "new-checkout", false, pro(user)) // no experiment: no event
		p.Track(bg, "purchase", openfeature.NewEvaluationContext(user, nil), openfeature.NewTrackingEventDetails(12.5))
	}
	p.Track(bg, "purchase", openfeature.NewTargetlessEvaluationContext(nil), openfeature.NewTrackingEventDetails(1)) // no user: refused
	p.Shutdown()
	stored := f.storedEvents()
	exposures, goals := 0, 0
	for _, e := range stored {
		if e["event_id"] == "" || e["occurred_at"] == "" {
			t.Fatalf("event without id or time: %v", e)
		}
		at, err := time.Parse(time.RFC3339Nano, e["occurred_at"].(string))
		if err != nil {
			t.Fatalf("occurred_at: %v", err)
		}
		// A UUIDv7 whose 48-bit timestamp is occurred_at's millisecond.
		id, _ := e["event_id"].(string)
		if !uuidV7.MatchString(id) {
			t.Fatalf("event_id %q is not a UUIDv7", id)
		}
		if ms, _ := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64); ms != at.UnixMilli() {
			t.Fatalf("event_id %s holds %d ms, occurred_at %s is %d", id, ms, at.Format(time.RFC3339Nano), at.UnixMilli())
		}
		switch e["kind"] {
		case "evaluation":
			exposures++
			if e["experiment_key"] != "banner-test" || e["flag_key"] != "banner" || e["reason"] != "SPLIT" {
				t.Fatalf("exposure: %v", e)
			}
		case "goal":
			goals++
			if e["goal_key"] != "purchase" || e["value"] != 12.5 {
				t.Fatalf("goal: %v", e)
			}
		}
	}
	if exposures != users || goals != users {
		t.Fatalf("stored %d exposures and %d goals, want %d each", exposures, goals, users)
	}
	retried := 0
	for id, n := range f.attempts {
		if n > 1 {
			retried++
		}
		if f.eventIDs[id] != 1 {
			t.Fatalf("event %s posted %d times, stored %d times", id, n, f.eventIDs[id])
		}
	}
	if f.eventsFail != 0 || retried == 0 {
		t.Fatalf("the refusals were not retried: %d refusals left, %d events posted again", f.eventsFail, retried)
	}
	st := p.Stats()
	if st.EventsSent != int64(2*users) || st.EventsWaiting != 0 || st.EventsDropped != 0 || st.EventsRejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.Evaluations["banner"] == nil || st.Evaluations["new-checkout"]["true"] != int64(users) {
		t.Fatalf("evaluation counts %v", st.Evaluations)
	}
	t.Logf("%d events stored once each; %d were posted again (same event_id) after a 429 and a 503", len(stored), retried)
}

// A full queue drops and counts; evaluation never waits.
func TestProviderQueueIsBounded(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	f.set(func(f *fakeServer) { f.eventsFail = 1 << 30 })
	p := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.MaxQueuedEvents = 10; o.ShutdownTimeout = 100 * time.Millisecond })
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		p.Track(bg, "purchase", openfeature.NewEvaluationContext("u", nil), openfeature.NewTrackingEventDetails(1))
	}
	if st := p.Stats(); st.EventsDropped != 15 || st.EventsQueued != 10 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	if err := p.ShutdownContext(ctx); err == nil {
		t.Fatal("ShutdownContext reported every event delivered to a server that refuses them all")
	}
	if st := p.Stats(); st.EventsDropped != 25 || st.EventsSent != 0 {
		t.Fatalf("after a Shutdown that gave up: %+v", st)
	}
}

// No goroutine and no connection is left after Shutdown.
func TestProviderShutdownLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, nil)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream", func() bool { return f.get(func(f *fakeServer) int { return len(f.subscribers) }) == 1 })
	p.StringEvaluation(bg, "banner", "x", pro("u1"))
	p.Track(bg, "purchase", openfeature.NewEvaluationContext("u1", nil), openfeature.NewTrackingEventDetails(1))
	p.Shutdown()
	if n := len(f.storedEvents()); n != 2 {
		t.Fatalf("Shutdown delivered %d events, want 2", n)
	}
	waitFor(t, "the server to see the stream closed", func() bool { return f.get(func(f *fakeServer) int { return len(f.subscribers) }) == 0 })
	f.close() // the server's own goroutines end too
}

// SendEvaluations: one evaluation event per (user, flag, variation), for the flag's usage stats.
func TestProviderSendsEvaluationsWhenAsked(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.SendEvaluations, o.DisableExposures = true, true })
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		p.BooleanEvaluation(bg, "new-checkout", false, pro("u1"))                                          // true
		p.BooleanEvaluation(bg, "new-checkout", false, openfeature.FlattenedContext{"targetingKey": "u1"}) // false
		p.BooleanEvaluation(bg, "new-checkout", false, openfeature.FlattenedContext{"plan": "pro"})        // no user: not sent
		p.StringEvaluation(bg, "banner", "x", pro("u2"))                                                   // an experiment's: no experiment_key
	}
	p.Shutdown()
	got := map[string]int{}
	for _, e := range f.storedEvents() {
		if e["kind"] != "evaluation" || e["experiment_key"] != nil {
			t.Fatalf("unexpected event %v", e)
		}
		got[e["user_key"].(string)+"/"+e["flag_key"].(string)+"/"+e["variation_key"].(string)]++
	}
	if len(got) != 3 || got["u1/new-checkout/true"] != 1 || got["u1/new-checkout/false"] != 1 {
		t.Fatalf("evaluation events %v", got)
	}
	if n := p.Stats().Evaluations["new-checkout"]; n["true"] != 6 || n["false"] != 3 {
		t.Fatalf("evaluation counts %v", n)
	}
}

// A refused key (rotated, revoked): PROVIDER_ERROR, and the last ruleset keeps serving.
func TestProviderReportsARefusedKey(t *testing.T) {
	f := newFakeServer(t, testRuleset())
	p := newTestProvider(t, f.srv.URL, nil)
	events := collect(t, p)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	p2 := newTestProvider(t, f.srv.URL, func(o *vexil.Options) { o.ServerKey = "server-rotated" })
	if err := p2.Init(openfeature.EvaluationContext{}); err == nil {
		t.Fatal("Init with a refused key succeeded")
	}
	// Rotate the key under the first provider: the server closes its stream and refuses it.
	f.set(func(f *fakeServer) { f.key = "server-new" })
	f.srv.CloseClientConnections()
	waitFor(t, "PROVIDER_ERROR", func() bool { return events.has(openfeature.ProviderError, nil) })
	if p.Status() != openfeature.ErrorState {
		t.Fatalf("status %s", p.Status())
	}
	if b := p.BooleanEvaluation(bg, "new-checkout", false, pro("u1")); !b.Value || b.Error() != nil {
		t.Fatalf("the last ruleset is not served after the key was refused: %+v", b)
	}
}

// A flag that is null in the ruleset's JSON (a hand-edited bootstrap file, a newer server) is
// FLAG_NOT_FOUND, as the evaluator treats it, and neither installing that ruleset nor the next
// one panics.
func TestNullFlagIsNotFound(t *testing.T) {
	rs := testRuleset()
	rs.Flags["ghost"] = nil
	f := newFakeServer(t, rs)
	p := newTestProvider(t, f.srv.URL, nil)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	if d := p.BooleanEvaluation(bg, "ghost", true, pro("u1")); !d.Value || d.ResolutionDetail().ErrorCode != openfeature.FlagNotFoundCode {
		t.Fatalf("null flag: %+v", d)
	}
	f.change(func(rs *domain.Ruleset) {
		rs.Flags["max-items"].Targeting.Default.Variation = "half"
		rs.Flags["max-items"].Version++
	})
	waitFor(t, "the next ruleset", func() bool { return p.FloatEvaluation(bg, "max-items", 1, pro("u1")).Value == 2.5 })
}
