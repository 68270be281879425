package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/roles/projector"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
	"github.com/vexil-flags/vexil/services/testkit"
)

// receiver is a webhook endpoint as a project would write one: it verifies the signature, then
// de-duplicates by delivery id. It refuses the first failFirst attempts of the first delivery
// it sees, to exercise the retries.
type receiver struct {
	t         *testing.T
	secret    string
	failFirst int

	mu       sync.Mutex
	first    string                      // id of the delivery refused failFirst times
	refused  int                         // refusals so far
	byID     map[string]webhooks.Payload // de-duplicated by delivery id
	requests int
	bad      []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if err := webhooks.Verify(rc.secret, r.Header.Get(webhooks.SignatureHeader), body, 0, time.Now()); err != nil {
		rc.bad = append(rc.bad, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(webhooks.DeliveryIDHeader)
	if rc.first == "" {
		rc.first = id
	}
	if id == rc.first && rc.refused < rc.failFirst {
		rc.refused++
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var p webhooks.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.ID != id {
		rc.bad = append(rc.bad, "payload "+string(body))
	}
	rc.byID[id] = p
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) positions() map[int64]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[int64]int{}
	for _, p := range rc.byID {
		if p.Event != nil {
			out[p.Event.Position]++
		}
	}
	return out
}

func TestWebhooksDeliverEachSubscribedEventOnceSignedWithRetries(t *testing.T) {
	ctx := context.Background()
	pool, store := pgtest.NewEventStore(t)
	subs, err := webhooks.NewStore(pool)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projector.New(projector.Config{Pool: pool, Store: store, Projections: []projections.Projection{webhooks.Outbox{}}})
	if err != nil {
		t.Fatal(err)
	}
	meta := domain.Metadata{Actor: "user:u_ada", Reason: "incident 42"}
	appendAndProject := func(stream string, version int64, e domain.Event) domain.RecordedEvent {
		t.Helper()
		rec, err := store.Append(ctx, stream, version, meta, e)
		if err != nil {
			t.Fatal(err)
		}
		// Twice: a redelivered notification must queue nothing again.
		for range 2 {
			if err := runner.ApplyStream(ctx, stream); err != nil {
				t.Fatal(err)
			}
		}
		return rec[0]
	}
	// History before the subscription is never sent.
	appendAndProject(domain.FlagStream("shop", "checkout"), 0, &domain.FlagToggled{Environment: "production", On: true})

	rc := &receiver{t: t, secret: "a-receiver-secret-of-32-chars!!", failFirst: 3, byID: map[string]webhooks.Payload{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	sub, err := subs.Create(ctx, "shop", webhooks.NewSubscription{URL: srv.URL + "/hook", Secret: rc.secret,
		Kinds: []string{webhooks.KindFlagChanged, webhooks.KindRolloutStepApplied, webhooks.KindChangeRequestApproved}}, "user:u_admin")
	if err != nil {
		t.Fatal(err)
	}

	// A Slack-compatible subscription gets {"text": ...}, signed the same way.
	var slackMu sync.Mutex
	var slackTexts []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg map[string]string
		if webhooks.Verify("slack-secret-0123456789", r.Header.Get(webhooks.SignatureHeader), body, 0, time.Now()) != nil ||
			json.Unmarshal(body, &msg) != nil || len(msg) != 1 {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		slackMu.Lock()
		slackTexts = append(slackTexts, msg["text"])
		slackMu.Unlock()
	}))
	t.Cleanup(slack.Close)
	if _, err := subs.Create(ctx, "shop", webhooks.NewSubscription{URL: slack.URL, Secret: "slack-secret-0123456789",
		Kinds: []string{webhooks.KindFlagChanged}, Format: webhooks.FormatSlack}, "user:u_admin"); err != nil {
		t.Fatal(err)
	}

	want := map[int64]string{}
	e := appendAndProject(domain.FlagStream("shop", "checkout"), 1, &domain.FlagToggled{Environment: "production", On: false})
	want[e.Position] = "FlagToggled"
	e = appendAndProject(domain.RolloutStream("shop", "r1"), 0, &domain.RolloutStepApplied{Index: 0, Percent: 10, Weight: 10000})
	want[e.Position] = "RolloutStepApplied"
	// Not subscribed (kind), not a kind at all, another project: none is sent.
	appendAndProject(domain.ExperimentStream("shop", "exp"), 0, &domain.ExperimentConcluded{Variation: "on", Reason: "won"})
	appendAndProject(domain.SegmentStream("shop", "beta"), 0, &domain.SegmentArchived{})
	appendAndProject(domain.FlagStream("other", "checkout"), 0, &domain.FlagToggled{Environment: "production", On: true})

	reg := prometheus.NewRegistry()
	worker, err := webhooks.NewWorker(webhooks.WorkerConfig{Pool: pool, Registerer: reg, PollInterval: 10 * time.Millisecond,
		Backoff: func(int) time.Duration { return time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})

	testkit.WaitFor(t, 20*time.Second, "both subscribed events delivered", func() bool { return len(rc.positions()) == len(want) })
	for pos, n := range rc.positions() {
		if want[pos] == "" || n != 1 {
			t.Errorf("event at position %d received %d times after de-duplication (want once, subscribed: %q)", pos, n, want[pos])
		}
	}
	rc.mu.Lock()
	if len(rc.bad) > 0 {
		t.Errorf("receiver refused: %v", rc.bad)
	}
	for _, p := range rc.byID {
		if p.Project != "shop" || p.Actor != "user:u_ada" || p.Reason != "incident 42" || p.Text == "" || want[p.Event.Position] != p.Event.Type {
			t.Errorf("payload %+v", p)
		}
	}
	first := rc.first
	rc.mu.Unlock()

	// The receiver answers before the worker records the answer: wait for the log.
	var log []webhooks.Delivery
	testkit.WaitFor(t, 20*time.Second, "the delivery log to show every delivery delivered", func() bool {
		if log, err = subs.Deliveries(ctx, "shop", sub.ID, 0); err != nil {
			t.Fatal(err)
		}
		for _, d := range log {
			if d.Status != "delivered" {
				return false
			}
		}
		return true
	})
	if len(log) != 2 {
		t.Fatalf("delivery log has %d entries, want 2: %+v", len(log), log)
	}
	for _, d := range log {
		if d.Status != "delivered" || d.ResponseCode == nil || *d.ResponseCode != http.StatusNoContent || d.LatencyMS == nil {
			t.Errorf("delivery %+v", d)
		}
		if d.ID != first {
			continue
		}
		if d.Attempts != 4 || len(d.AttemptLog) != 4 {
			t.Fatalf("the refused delivery took %d attempts (%d logged), want 4", d.Attempts, len(d.AttemptLog))
		}
		for i, a := range d.AttemptLog {
			wantCode := http.StatusServiceUnavailable
			if i == 3 {
				wantCode = http.StatusNoContent
			}
			if a.Attempt != i+1 || a.ResponseCode == nil || *a.ResponseCode != wantCode {
				t.Errorf("attempt %d: %+v", i+1, a)
			}
		}
	}
	if got := counter(t, reg, "vexil_webhook_attempts_total", "error"); got != 3 {
		t.Errorf("failed attempts counted %v, want 3", got)
	}
	if got := counter(t, reg, "vexil_webhook_deliveries_total", "delivered"); got != 3 {
		t.Errorf("deliveries counted %v, want 3 (two events, one Slack message)", got)
	}

	testkit.WaitFor(t, 20*time.Second, "the Slack message", func() bool {
		slackMu.Lock()
		defer slackMu.Unlock()
		return len(slackTexts) == 1
	})
	slackMu.Lock()
	if want := "[shop] FlagToggled flag checkout in production: off by user:u_ada (incident 42)"; slackTexts[0] != want {
		t.Errorf("Slack text %q, want %q", slackTexts[0], want)
	}
	slackMu.Unlock()

	// Send test: queued, delivered, logged.
	test, err := subs.SendTest(ctx, "shop", sub.ID, "user:u_admin")
	if err != nil {
		t.Fatal(err)
	}
	worker.Wake()
	testkit.WaitFor(t, 20*time.Second, "the test delivery", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.byID[test.ID].Kind == webhooks.KindTest
	})
}

// counter reads a counter's value of the label outcome from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{outcome=%q}", name, outcome)
	return 0
}

func TestVerifyRefusesTamperingAndOldTimestamps(t *testing.T) {
	body := []byte(`{"id":"whd_1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := webhooks.Sign("s3cret-s3cret-s3cret", now, body)
	if err := webhooks.Verify("s3cret-s3cret-s3cret", sig, body, 0, now.Add(time.Minute)); err != nil {
		t.Fatalf("a fresh delivery: %v", err)
	}
	cases := map[string]struct {
		secret, header string
		body           []byte
		at             time.Time
	}{
		"other body":          {"s3cret-s3cret-s3cret", sig, []byte(`{"id":"whd_2"}`), now},
		"other secret":        {"another-secret-entirely", sig, body, now},
		"replayed later":      {"s3cret-s3cret-s3cret", sig, body, now.Add(webhooks.DefaultTolerance + time.Second)},
		"no signature":        {"s3cret-s3cret-s3cret", "t=1800000000", body, now},
		"garbage":             {"s3cret-s3cret-s3cret", "hello", body, now},
		"timestamp rewritten": {"s3cret-s3cret-s3cret", strings.Replace(sig, "t=1800000000", "t=1800000100", 1), body, now},
	}
	for name, c := range cases {
		if err := webhooks.Verify(c.secret, c.header, c.body, 0, c.at); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExponentialBackoffDoublesWithJitterUpToTheLimit(t *testing.T) {
	b := webhooks.ExponentialBackoff(10*time.Second, time.Hour)
	for failed, step := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 30: time.Hour} {
		for range 50 {
			if d := b(failed); d < step/2 || d > step {
				t.Fatalf("after %d failures: %v, want within [%v, %v]", failed, d, step/2, step)
			}
		}
	}
}

func TestKindsCoverEveryNamedKind(t *testing.T) {
	for _, k := range []string{webhooks.KindFlagChanged, webhooks.KindChangeRequestOpened, webhooks.KindChangeRequestApproved,
		webhooks.KindChangeRequestApplied, webhooks.KindExperimentConcluded, webhooks.KindAutoOpsFired, webhooks.KindRolloutStepApplied,
		webhooks.KindRolloutGuardFired, webhooks.KindRolloutPaused, webhooks.KindReleaseAwaitingApproval} {
		found := false
		for _, have := range webhooks.Kinds() {
			found = found || have == k
		}
		if !found {
			t.Errorf("kind %s is told by no event type", k)
		}
	}
}

// Signing and verifying a typical delivery (a 1 KiB body).
func BenchmarkSignAndVerify(b *testing.B) {
	body := []byte(strings.Repeat("x", 1024))
	now := time.Now()
	for b.Loop() {
		if err := webhooks.Verify("a-secret-of-some-length", webhooks.Sign("a-secret-of-some-length", now, body), body, 0, now); err != nil {
			b.Fatal(err)
		}
	}
}
