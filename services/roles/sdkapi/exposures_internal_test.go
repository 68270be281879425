package sdkapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/telemetry"
)

// fakeStream takes or refuses batches, as the telemetry ingestor does.
type fakeStream struct {
	mu      sync.Mutex
	down    bool
	batches []*telemetry.Batch
}

func (f *fakeStream) publish(_ context.Context, b *telemetry.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("stream unavailable")
	}
	f.batches = append(f.batches, b)
	return nil
}

func exposed(flag, experiment, variation string) *evaluation.Result {
	return &evaluation.Result{FlagKey: flag, Experiment: experiment, Variation: variation, Reason: "SPLIT", VariationIndex: 0}
}

func TestExposureLogPublishesEachExposureOnceInBatches(t *testing.T) {
	stream := &fakeStream{}
	off := []string{"shop/staging"}
	l := newExposureLog(ExposureOptions{Publish: stream.publish, MaxPending: 3,
		Disabled: func(context.Context) ([]string, error) { return off, nil }},
		prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	prod, staging := envID{"shop", "production"}, envID{"shop", "staging"}
	if !l.logs(staging) {
		t.Fatal("staging off before the settings were read")
	}
	l.refreshDisabled(context.Background())
	if !l.logs(prod) || l.logs(staging) || (*exposureLog)(nil).logs(prod) {
		t.Fatal("logs: production on, staging disabled, a nil log off")
	}
	off = nil
	l.refreshDisabled(context.Background())
	if !l.logs(staging) || counterValue(t, l.disabledEnvs) != 0 {
		t.Fatal("staging still off after its setting was turned on")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !l.record(prod, "u1", at, exposed("checkout", "exp", "a")) {
		t.Fatal("first exposure not taken")
	}
	// The same user evaluated again is not logged again (the analysis keeps the first exposure).
	if l.record(prod, "u1", at.Add(time.Second), exposed("checkout", "exp", "a")) {
		t.Fatal("repeated exposure taken")
	}
	// No exposure: no experiment, no variation, an error.
	for _, r := range []*evaluation.Result{exposed("checkout", "", "a"), exposed("checkout", "exp", ""),
		{FlagKey: "checkout", Experiment: "exp", Variation: "a", Reason: evaluation.ReasonError}} {
		if l.record(prod, "u2", at, r) {
			t.Fatalf("%+v taken as an exposure", r)
		}
	}
	l.record(prod, "u2", at, exposed("checkout", "exp", "b"))
	l.record(prod, "u3", at, exposed("checkout", "exp", "a"))
	// The buffer holds 3: the fourth is dropped, counted, and not remembered.
	if l.record(prod, "u4", at, exposed("checkout", "exp", "a")) {
		t.Fatal("exposure past MaxPending taken")
	}
	if got := counterValue(t, l.dropped); got != 1 {
		t.Fatalf("dropped = %v, want 1", got)
	}
	l.flush(context.Background())
	if len(stream.batches) != 1 || stream.batches[0].Len() != 3 {
		t.Fatalf("published %d batches", len(stream.batches))
	}
	b := stream.batches[0]
	e := b.Evaluations
	if b.Project != "shop" || b.Environment != "production" || e.User[0] != "u1" || e.Experiment[0] != "exp" ||
		e.Variation[1] != "b" || e.Flag[2] != "checkout" || !e.OccurredAt[0].Equal(at) || e.Count[0] != 1 || e.Reason[0] != "SPLIT" {
		t.Fatalf("batch %+v", b)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}

	// While the stream is down, the batch waits with its event ids and goes out later.
	if !l.record(prod, "u4", at, exposed("checkout", "exp", "a")) {
		t.Fatal("u4 not taken once there is room")
	}
	stream.down = true
	l.flush(context.Background())
	if len(l.retry) != 1 || l.held != 1 {
		t.Fatalf("retry %d held %d", len(l.retry), l.held)
	}
	id := l.retry[0].Evaluations.EventID[0]
	stream.down = false
	l.flush(context.Background())
	if len(stream.batches) != 2 || stream.batches[1].Evaluations.EventID[0] != id || l.held != 0 {
		t.Fatalf("the retried batch is not the same: %d batches", len(stream.batches))
	}
	if got := counterValue(t, l.published); got != 4 {
		t.Fatalf("published = %v, want 4", got)
	}
}

func TestExposureLogForgetsOldestGeneration(t *testing.T) {
	stream := &fakeStream{}
	l := newExposureLog(ExposureOptions{Publish: stream.publish, Remember: 2}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	env := envID{"shop", "production"}
	now := time.Now()
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		if !l.record(env, u, now, exposed("f", "x", "a")) {
			t.Fatalf("%s not taken", u)
		}
	}
	// u1 and u2 were rotated out twice: logged again (the projector's per-user dedup absorbs it);
	// u5 is still remembered.
	if !l.record(env, "u1", now, exposed("f", "x", "a")) || l.record(env, "u5", now, exposed("f", "x", "a")) {
		t.Fatal("remembered set does not rotate as documented")
	}
}

// counterValue reads a counter through a registry (no import of the metric model needed).
func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v", err)
	}
	m := mfs[0].GetMetric()[0]
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

type countsSink struct{ batch []EvaluationCount }

func (s *countsSink) RecordEvaluationCounts(_ context.Context, b []EvaluationCount) error {
	s.batch = append(s.batch, b...)
	return nil
}

// Server-key evaluations stored as exposure events stay in /metrics but are not handed to the
// telemetry sink a second time.
func TestCountersLeaveLoggedExposuresOutOfTheSink(t *testing.T) {
	rs := benchRuleset(t, "small", benchSmallClient, benchSmallServer, 10)
	snap := &snapshot{id: envID{"small", "production"}, counts: newCounters(rs)}
	var flag string
	for k := range rs.Flags {
		flag = k
		break
	}
	r := &evaluation.Result{FlagKey: flag, Variation: rs.Flags[flag].Variations[0].Key, VariationIndex: 0}
	for i := range 5 {
		snap.counts.record(r, i < 2) // two of them logged as exposures
	}
	sink := &countsSink{}
	reg := prometheus.NewRegistry()
	f := newCounterFlusher(sink, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.flush(context.Background(), []*snapshot{snap})
	if len(sink.batch) != 1 || sink.batch[0].Count != 3 {
		t.Fatalf("sink got %+v, want one count of 3", sink.batch)
	}
	if got := counterValue(t, f.metric); got != 5 {
		t.Fatalf("metric %v, want 5", got)
	}
	// Only logged evaluations: the metric moves, the sink gets nothing.
	snap.counts.record(r, true)
	sink.batch = nil
	f.flush(context.Background(), []*snapshot{snap})
	if len(sink.batch) != 0 || counterValue(t, f.metric) != 6 {
		t.Fatalf("sink %+v metric %v", sink.batch, counterValue(t, f.metric))
	}
}
