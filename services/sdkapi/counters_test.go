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
		snap.counts.recordNext(&cursor, &r, false)
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
