package analysis_test

import (
	"context"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// The quantile statement against a plain formulation: every unit's revenue total (0 without a
// goal event) by a correlated subquery, then percentile_disc and the order statistics at
// stats.QuantileRanks from an ordered array. p95, since about 12% of the users buy: the estimate
// is among the buyers, the lower bound may be a 0.
func TestAnalyzeQuantileEqualsPercentileDisc(t *testing.T) {
	a, pool, configure, done := setupExperiment(t, 3000)
	defer done()
	configure(domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "revenue", Quantile: 0.95}}})
	res, err := a.Analyze(context.Background(), "p", "e")
	if err != nil {
		t.Fatal(err)
	}
	revenue := res.Goals[2]
	if revenue.Goal != "revenue" || res.Goals[0].Variations[0].Quantile != nil {
		t.Fatalf("quantile on %s, or on a goal without the setting", revenue.Goal)
	}
	rows, err := pool.Query(context.Background(), `WITH units AS (
		  SELECT user_key, min(occurred_at) AS first_at, min(variation) AS variation, count(DISTINCT variation) AS k
		  FROM evaluation_events WHERE experiment = 'e' GROUP BY user_key),
		totals AS (
		  SELECT u.variation, coalesce((SELECT sum(g.value) FROM goal_events g WHERE g.user_key = u.user_key AND g.goal = 'revenue'
		    AND g.occurred_at >= u.first_at AND g.occurred_at <= now()), 0) AS y
		  FROM units u WHERE k = 1)
		SELECT variation, count(*), percentile_disc(0.95) WITHIN GROUP (ORDER BY y), array_agg(y ORDER BY y) FROM totals GROUP BY variation`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var v string
		var n int64
		var p95 float64
		var ys []float64
		if err := rows.Scan(&v, &n, &p95, &ys); err != nil {
			t.Fatal(err)
		}
		var got *analysis.QuantileFigures
		for _, x := range revenue.Variations {
			if x.Variation == v && x.Quantile != nil {
				got = x.Quantile
				seen++
				if x.Control == (got.Frequentist != nil) {
					t.Errorf("%s: control %v with a test %v", v, x.Control, got.Frequentist)
				}
			}
		}
		if got == nil {
			t.Fatalf("no quantile for %s", v)
		}
		lo, hi := stats.QuantileRanks(n, 0.95, 0.05)
		if got.Users != n || got.Estimate != p95 || got.CI != [2]float64{ys[lo-1], ys[hi-1]} || got.Ranks != [2]int64{lo, hi} || !(p95 > 0) {
			t.Errorf("%s: %+v, want n %d, p95 %v, interval [%v, %v]", v, *got, n, p95, ys[lo-1], ys[hi-1])
		}
	}
	if err := rows.Err(); err != nil || seen != 3 {
		t.Fatalf("%d variations compared: %v", seen, err)
	}

	// Counts that differ from the statement's (as when events are stored between the statistics
	// statement and this one): the ranks are recomputed from the statement's own counts and the
	// figures are those of the analysis.
	wrong := map[string]int64{}
	for _, v := range revenue.Variations {
		wrong[v.Variation] = v.Users + 7
	}
	again, err := analysis.QuantilesWithUsers(context.Background(), a, "p", "e", wrong)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range revenue.Variations {
		got, want := again["revenue"][v.Variation], v.Quantile
		if got == nil || got.Users != want.Users || got.Estimate != want.Estimate || got.CI != want.CI || got.Ranks != want.Ranks {
			t.Errorf("%s after a recount: %+v, want %+v", v.Variation, got, want)
		}
	}
}

// BenchmarkAnalyzeQuantile1MUsers is the cost of a quantile goal at the scale: the same
// analysis without and with p95 of revenue (paired, on the same data), database CPU per analysis
// reported as in BenchmarkAnalyze1MUsers3Variations5Goals.
func BenchmarkAnalyzeQuantile1MUsers(b *testing.B) {
	a, pool, configure, done := setupExperiment(b, 1_000_000)
	defer done()
	for _, quantile := range []bool{false, true} {
		if quantile {
			configure(domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "revenue", Quantile: 0.95}}})
		}
		b.Run(map[bool]string{false: "plain", true: "p95"}[quantile], func(b *testing.B) {
			cpu0 := backendCPU(b, pool)
			for i := 0; i < b.N; i++ {
				res, err := a.Analyze(context.Background(), "p", "e")
				if err != nil {
					b.Fatal(err)
				}
				if (res.Goals[2].Variations[0].Quantile != nil) != quantile {
					b.Fatalf("quantile %v: %+v", quantile, res.Goals[2].Variations[0])
				}
			}
			b.ReportMetric((backendCPU(b, pool)-cpu0)/float64(b.N), "db-cpu-s/op")
		})
	}
}
