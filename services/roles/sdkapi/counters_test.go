package sdkapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// The evaluation counter's flag label sets stop growing at the bound: later flags count under
// flag="other" of their environment, so no evaluation is lost from the metric's totals; a bound
// of 0 labels no flag at all.
func TestEvaluationMetricSeriesAreBounded(t *testing.T) {
	for _, tc := range []struct {
		bound, wantSeries int
	}{
		{-1, 20}, // unbounded: one series per flag
		{5, 6},   // five flags of their own and one "other"
		{0, 1},   // only "other"
	} {
		t.Run(fmt.Sprint(tc.bound), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			f := newCounterFlusher(nil, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			f.limitSeries(tc.bound)
			rs := &domain.Ruleset{Project: "p", Environment: "e", Version: 1, Flags: map[string]*domain.FlagConfig{}}
			for i := 0; i < 20; i++ {
				key := fmt.Sprintf("flag-%02d", i)
				rs.Flags[key] = &domain.FlagConfig{Key: key, Type: domain.FlagBoolean, Version: 1,
					Variations: []domain.Variation{{Key: "on", Value: true}}}
			}
			snap, err := newSnapshot(envID{"p", "e"}, rs, nil)
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ { // a second flush reuses the series it made
				for key := range rs.Flags {
					snap.counts.record(&evaluation.Result{FlagKey: key, VariationIndex: 0}, false)
				}
				f.flush(context.Background(), []*snapshot{snap})
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			series, total := 0, 0.0
			for _, mf := range families {
				if mf.GetName() != "vexil_sdk_evaluations_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					series++
					total += m.GetCounter().GetValue()
				}
			}
			if series != tc.wantSeries {
				t.Fatalf("%d series, want %d", series, tc.wantSeries)
			}
			if total != 40 {
				t.Fatalf("the series count %v evaluations, want 40", total)
			}
		})
	}
}

// A reload keeps counting: evaluations recorded on the previous snapshot (requests still running
// on it) and on the new one are each flushed exactly once, whether the flag kept its variations
// (its counters carry over), changed them, or went away (its counters are flushed once more).
func TestEvaluationCountsSurviveReloads(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	snaps := NewSnapshots(nil, log, newCounterFlusher(nil, prometheus.NewRegistry(), log))
	id := envID{"p", "e"}
	env := snaps.environment(id, true)
	flag := func(key string, variations ...string) *domain.FlagConfig {
		f := &domain.FlagConfig{Key: key, Type: domain.FlagString, Version: 1,
			Targeting: domain.Targeting{On: true, OffVariation: variations[0], Default: domain.Serve{Variation: variations[0]}}}
		for _, v := range variations {
			f.Variations = append(f.Variations, domain.Variation{Key: v, Value: v})
		}
		return f
	}
	install := func(version int64, flags ...*domain.FlagConfig) *snapshot {
		rs := &domain.Ruleset{Project: id.project, Environment: id.environment, Version: version, Flags: map[string]*domain.FlagConfig{}}
		for _, f := range flags {
			rs.Flags[f.Key] = f
		}
		if err := snaps.install(env, id, rs); err != nil {
			t.Fatal(err)
		}
		return env.current.Load()
	}
	record := func(s *snapshot, key string, variation, times int) {
		for range times {
			s.counts.record(&evaluation.Result{FlagKey: key, VariationIndex: variation}, false)
		}
	}
	total := func(batch []EvaluationCount) map[string]int64 {
		out := map[string]int64{}
		for _, c := range batch {
			out[c.Flag+"/"+c.Variation] += c.Count
		}
		return out
	}

	v1 := install(1, flag("kept", "a", "b"), flag("changed", "a", "b"), flag("removed", "a", "b"))
	record(v1, "kept", 0, 1)
	record(v1, "changed", 1, 2)
	record(v1, "removed", 0, 3)
	v2 := install(2, flag("kept", "a", "b"), flag("changed", "b", "c"), flag("added", "a", "b"))
	record(v1, "kept", 1, 4) // a request that took v1 before the reload and answers after it
	record(v1, "changed", 1, 5)
	record(v1, "removed", 0, 6)
	record(v2, "kept", 1, 7)
	record(v2, "changed", 0, 8)
	record(v2, "added", 1, 9)

	got := total(snaps.counterLog.flush(context.Background(), snaps.all()))
	want := map[string]int64{"kept/a": 1, "kept/b": 11, "changed/b": 2 + 5 + 8, "removed/a": 9, "added/b": 9}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("flushed %v, want %v", got, want)
	}
	if n := len(snaps.counterLog.retired); n != 0 {
		t.Fatalf("%d retired counters kept after the flush", n)
	}
	if got := total(snaps.counterLog.flush(context.Background(), snaps.all())); len(got) != 0 {
		t.Fatalf("a second flush found %v again", got)
	}
}

// A bulk evaluation counts through a cursor over the evaluation order: flags a filter skipped,
// and a result out of that order, are counted exactly as record counts them.
func TestBulkCountsFollowTheEvaluationOrder(t *testing.T) {
	rs := &domain.Ruleset{Project: "p", Environment: "e", Version: 1, Flags: map[string]*domain.FlagConfig{}}
	for i := range 6 {
		key := fmt.Sprintf("flag-%d", i)
		rs.Flags[key] = &domain.FlagConfig{Key: key, Type: domain.FlagBoolean, Version: 1,
			Variations: []domain.Variation{{Key: "on", Value: true}, {Key: "off", Value: false}}}
	}
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := newSnapshot(envID{"p", "e"}, rs, compiled)
	if err != nil {
		t.Fatal(err)
	}
	cursor := 0
	for _, r := range []evaluation.Result{{FlagKey: "flag-0", VariationIndex: 0}, {FlagKey: "flag-2", VariationIndex: 1},
		{FlagKey: "flag-5", VariationIndex: -1}, {FlagKey: "flag-1", VariationIndex: 0}, {FlagKey: "gone", VariationIndex: 0}} {
		snap.counts.recordAt(snap.counts.next(&cursor, r.FlagKey), &r, false)
	}
	got := map[string]int64{}
	f := newCounterFlusher(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, c := range f.flush(context.Background(), []*snapshot{snap}) {
		got[c.Flag+"/"+c.Variation] += c.Count
	}
	want := map[string]int64{"flag-0/on": 1, "flag-2/off": 1, "flag-5/": 1, "flag-1/on": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
}
