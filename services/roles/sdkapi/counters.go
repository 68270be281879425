package sdkapi

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// counters counts server-side evaluations of one snapshot per flag and variation. The hot path is
// one map lookup and one atomic add; nothing allocates.
type counters struct {
	flags map[string]*flagCounts
	// keys and ordered are the flags in the compiled ruleset's evaluation order (by key), so a bulk
	// evaluation, whose results come in that order, finds each flag's counts by walking a cursor
	// with one string comparison (the same backing bytes: a pointer check) instead of hashing
	// every key: the map lookups were a fifth of bulk CPU.
	keys    []string
	ordered []*flagCounts
}

type flagCounts struct {
	variations []string       // variation keys by index
	n          []atomic.Int64 // per variation; the last slot counts evaluations that served none
	// logged counts the evaluations of n that were stored as exposure events (exposures.go):
	// they are in the metric but not in the counts handed to the sink, which would count them twice.
	logged []atomic.Int64
}

func newCounters(rs *domain.Ruleset) *counters {
	c := &counters{flags: make(map[string]*flagCounts, len(rs.Flags))}
	// One block for every flag's numbers, and one for the flags: a bulk evaluation touches them
	// all, and adjacent numbers share cache lines instead of each being its own allocation.
	slots := 0
	for _, f := range rs.Flags {
		slots += len(f.Variations) + 1
	}
	n, logged := make([]atomic.Int64, slots), make([]atomic.Int64, slots)
	all := make([]flagCounts, 0, len(rs.Flags))
	for key, f := range rs.Flags {
		k := len(f.Variations) + 1
		all = append(all, flagCounts{variations: make([]string, len(f.Variations)), n: n[:k:k], logged: logged[:k:k]})
		n, logged = n[k:], logged[k:]
		fc := &all[len(all)-1]
		for i, v := range f.Variations {
			fc.variations[i] = v.Key
		}
		c.flags[key] = fc
	}
	return c
}

// carryOver makes c count on in prev's numbers for every flag whose variations are unchanged, so
// a reload leaves behind only the counts of flags that changed their variations or went away: it
// returns those (nil if none), to be flushed once more. Evaluations still running on the previous
// snapshot add to the same numbers as the new one, so nothing is lost or counted twice, and a
// reload keeps a few counters alive until the next flush instead of the whole previous snapshot.
func (c *counters) carryOver(prev *counters) (left *counters) {
	for key, old := range prev.flags {
		if fc, ok := c.flags[key]; ok && slices.Equal(fc.variations, old.variations) {
			c.flags[key] = old
			continue
		}
		if left == nil {
			left = &counters{flags: map[string]*flagCounts{}}
		}
		left.flags[key] = old
	}
	if c.keys != nil {
		c.inOrder(c.keys) // the bulk cursor must count into the carried-over numbers too
	}
	return left
}

// inOrder sets the evaluation order of the flags (evaluation.Compiled.Flags).
func (c *counters) inOrder(keys []string) {
	c.keys = keys
	c.ordered = make([]*flagCounts, len(keys))
	for i, k := range keys {
		c.ordered[i] = c.flags[k]
	}
}

// next returns the position in the evaluation order of the flag of the next result of one bulk
// evaluation, whose results come in that order: *cursor starts at 0 and moves forward over the
// flags the filter skipped. -1 for a result out of that order (none is).
func (c *counters) next(cursor *int, flagKey string) int {
	for j := *cursor; j < len(c.keys); j++ {
		if c.keys[j] == flagKey {
			*cursor = j + 1
			return j
		}
	}
	return -1
}

// recordAt is record for the flag at position i of the evaluation order (-1: look it up).
func (c *counters) recordAt(i int, r *evaluation.Result, logged bool) {
	if i < 0 || i >= len(c.ordered) || c.keys[i] != r.FlagKey {
		c.record(r, logged)
		return
	}
	if fc := c.ordered[i]; fc != nil {
		fc.record(r, logged)
	}
}

// record counts one evaluation result; logged says it is also stored as an exposure event.
func (c *counters) record(r *evaluation.Result, logged bool) {
	fc := c.flags[r.FlagKey]
	if fc == nil {
		return // unknown flag: nothing to attribute
	}
	fc.record(r, logged)
}

func (fc *flagCounts) record(r *evaluation.Result, logged bool) {
	i := r.VariationIndex
	if i < 0 || i >= len(fc.variations) {
		i = len(fc.variations)
	}
	fc.n[i].Add(1) // before logged: a flush that sees this logged also sees this count (see flush)
	if logged {
		fc.logged[i].Add(1)
	}
}

// EvaluationCount is how often a variation of a flag was served in an environment during a window.
type EvaluationCount struct {
	Project     string    `json:"project"`
	Environment string    `json:"environment"`
	Flag        string    `json:"flag"`
	Variation   string    `json:"variation"` // "" when no variation was served (errors)
	Count       int64     `json:"count"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
}

// CountSink receives batches of evaluation counts: the telemetry path stores them.
type CountSink interface {
	RecordEvaluationCounts(ctx context.Context, batch []EvaluationCount) error
}

// counterFlusher drains the counters of every snapshot on a timer into a batch for the sink and the
// Prometheus counter. Counters a reload leaves behind (see carryOver) are drained once more, so no
// count is lost across reloads.
type counterFlusher struct {
	sink   CountSink
	metric *prometheus.CounterVec
	log    *slog.Logger

	// The metric's label sets are bounded: each is a series Prometheus keeps for ever, and flag
	// keys are as many as people create. The first maxSeries (project, environment, flag,
	// variation) sets get series of their own; later ones count under flag and variation
	// OtherLabel of their environment. Negative: no bound; 0: no flag labels at all.
	seriesMu  sync.Mutex
	maxSeries int
	labelled  map[seriesKey]prometheus.Counter
	capped    bool // the bound was reached (logged once)

	mu      sync.Mutex
	retired []envCounts
	from    time.Time
}

func newCounterFlusher(sink CountSink, reg prometheus.Registerer, log *slog.Logger) *counterFlusher {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vexil_sdk_evaluations_total",
		Help: "Server-side flag evaluations (OFREP single and bulk) by project, environment, flag and variation.",
	}, []string{"project", "environment", "flag", "variation"})
	if reg != nil {
		reg.MustRegister(m)
	}
	return &counterFlusher{sink: sink, metric: m, log: log, from: time.Now(), maxSeries: -1,
		labelled: map[seriesKey]prometheus.Counter{}}
}

// OtherLabel is the flag and variation label of evaluations past the metric's series bound.
const OtherLabel = "other"

type seriesKey struct{ project, environment, flag, variation string }

// limitSeries bounds the metric's flag label sets to n (see maxSeries).
func (f *counterFlusher) limitSeries(n int) {
	f.seriesMu.Lock()
	f.maxSeries = n
	f.seriesMu.Unlock()
}

// counter is the series that counts k: its own while the bound allows, else its environment's
// OtherLabel series.
func (f *counterFlusher) counter(k seriesKey) prometheus.Counter {
	f.seriesMu.Lock()
	defer f.seriesMu.Unlock()
	if c, ok := f.labelled[k]; ok {
		return c
	}
	if f.maxSeries < 0 || len(f.labelled) < f.maxSeries {
		c := f.metric.WithLabelValues(k.project, k.environment, k.flag, k.variation)
		f.labelled[k] = c
		return c
	}
	if !f.capped && f.maxSeries > 0 {
		f.capped = true
		f.log.Warn("vexil_sdk_evaluations_total reached its bound of flag series; further flags count under flag=\"other\" "+
			"(raise VEXIL_METRICS_FLAG_SERIES, or read per-flag counts from the stats API)", "series", f.maxSeries)
	}
	return f.metric.WithLabelValues(k.project, k.environment, OtherLabel, OtherLabel)
}

// envCounts are the counters of one environment's snapshot.
type envCounts struct {
	id     envID
	counts *counters
}

// retire keeps counts that no current snapshot holds until the next flush drains them.
func (f *counterFlusher) retire(id envID, c *counters) {
	if f == nil || c == nil {
		return
	}
	f.mu.Lock()
	f.retired = append(f.retired, envCounts{id, c})
	f.mu.Unlock()
}

// flush drains the counts of current snapshots and retired counters into one batch.
func (f *counterFlusher) flush(ctx context.Context, current []*snapshot) []EvaluationCount {
	f.mu.Lock()
	retired := f.retired
	f.retired = nil
	from := f.from
	now := time.Now()
	f.from = now
	f.mu.Unlock()
	for _, s := range current {
		retired = append(retired, envCounts{s.id, s.counts})
	}
	var batch []EvaluationCount
	for _, s := range retired {
		for flag, fc := range s.counts.flags {
			for i := range fc.n {
				// logged first: each logged evaluation taken here has its count in n already. One
				// counted by an earlier flush, logged after it, is carried over (n - logged < 0).
				logged := fc.logged[i].Swap(0)
				n := fc.n[i].Swap(0)
				if logged > n {
					fc.logged[i].Add(logged - n)
					logged = n
				}
				if n == 0 {
					continue
				}
				variation := ""
				if i < len(fc.variations) {
					variation = fc.variations[i]
				}
				f.counter(seriesKey{s.id.project, s.id.environment, flag, variation}).Add(float64(n))
				if n > logged {
					batch = append(batch, EvaluationCount{Project: s.id.project, Environment: s.id.environment,
						Flag: flag, Variation: variation, Count: n - logged, From: from, To: now})
				}
			}
		}
	}
	if len(batch) > 0 && f.sink != nil {
		if err := f.sink.RecordEvaluationCounts(ctx, batch); err != nil {
			f.log.Warn("evaluation counts not handed to telemetry", "err", err, "counts", len(batch))
		}
	}
	return batch
}
