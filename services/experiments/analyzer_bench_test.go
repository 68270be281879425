package experiments_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/experiments"
	"github.com/vexil-flags/vexil/services/postgres"
	"github.com/vexil-flags/vexil/services/postgres/pgtest"
)

// setupExperiment migrates a database and writes an experiment on 3 variations with 5 goals
// (events) and `users` users into the per-user tables directly, as the telemetry projector would.
func setupExperiment(tb testing.TB, users int) (*experiments.Analyzer, func()) {
	tb.Helper()
	return setupExperimentOn(tb, pgtest.NewMigratedDatabase(tb), users)
}

// setupExperimentOn is setupExperiment on a migrated database at url.
func setupExperimentOn(tb testing.TB, url string, users int) (*experiments.Analyzer, func()) {
	tb.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool)
	if err != nil {
		tb.Fatal(err)
	}
	meta := domain.Metadata{Actor: "bench"}
	appendAll := func(stream string, events []domain.Event, err error) {
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := store.Append(ctx, stream, 0, meta, events...); err != nil {
			tb.Fatal(err)
		}
	}
	goals := []struct {
		key  string
		kind domain.GoalKind
	}{{"purchase", domain.GoalConversion}, {"signup", domain.GoalConversion}, {"revenue", domain.GoalValue},
		{"page-views", domain.GoalCount}, {"errors", domain.GoalCount}}
	for _, g := range goals {
		dir := domain.GoalIncrease
		if g.key == "errors" {
			dir = domain.GoalDecrease
		}
		ev, err := domain.CreateGoal(domain.NewGoal{Project: "p", Key: g.key, Name: g.key, Kind: g.kind, Direction: dir})
		appendAll(domain.GoalStream("p", g.key), ev, err)
	}
	// The experiment's events, written as the domain would (started, so it can be analysed).
	events := []domain.Event{
		&domain.ExperimentCreated{Project: "p", Key: "e", ExperimentDefinition: domain.ExperimentDefinition{Name: "e", Flag: "f",
			Environment: "prod", Allocation: domain.BucketCount, Seed: "s", PrimaryGoal: "purchase",
			SecondaryGoals: []string{"signup", "revenue", "page-views"}, GuardrailGoals: []string{"errors"},
			Variations: []domain.ExperimentVariation{{Variation: "a", Control: true, Weight: 33334}, {Variation: "b", Weight: 33333}, {Variation: "c", Weight: 33333}}}},
		&domain.ExperimentStarted{At: time.Now()},
	}
	appendAll(domain.ExperimentStream("p", "e"), events, nil)
	// Users: variation by i % 3; 2% multi-variation; goals with rates depending on the variation.
	if _, err := pool.Exec(ctx, `INSERT INTO experiment_exposures (project, environment, user_key, subject_kind, subject, variation, first_exposed_at, multiple_variations)
		SELECT 'p', 'prod', 'u' || i, 'experiment', 'e', (ARRAY['a','b','c'])[i % 3 + 1], now(), i % 50 = 0
		FROM generate_series(1, $1) i`, users); err != nil {
		tb.Fatal(err)
	}
	for gi, g := range goals {
		if _, err := pool.Exec(ctx, `INSERT INTO experiment_user_goals (project, environment, subject_kind, subject, user_key, goal,
			  conversions, value_sum, value_sum_squares, first_at, last_at)
			SELECT 'p', 'prod', 'experiment', 'e', 'u' || i, $2, 1 + i % 3, (i % 100)::float8, ((i % 100)^2)::float8, now(), now()
			FROM generate_series(1, $1) i WHERE (hashint4(i + $3) & 1023) < 100 + 20 * (i % 3)`, users, g.key, gi*7919); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE experiment_exposures; ANALYZE experiment_user_goals`); err != nil {
		tb.Fatal(err)
	}
	return experiments.NewAnalyzer(pool, store, slog.New(slog.NewTextHandler(io.Discard, nil))), pool.Close
}

// BenchmarkAnalyze1MUsers3Variations5Goals is issue 5's performance goal: under 2 s with SQL.
func BenchmarkAnalyze1MUsers3Variations5Goals(b *testing.B) {
	a, done := setupExperiment(b, 1_000_000)
	defer done()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := a.Analyze(context.Background(), "p", "e")
		if err != nil {
			b.Fatal(err)
		}
		if res.Users+res.ExcludedUsers != 1_000_000 || len(res.Goals) != 5 {
			b.Fatalf("analysed %d+%d users, %d goals", res.Users, res.ExcludedUsers, len(res.Goals))
		}
	}
}

// BenchmarkAnalyze1MUsers3Variations5GoalsTimescale is the same analysis on the native
// TimescaleDB server (its results stored in the experiment_results hypertable).
func BenchmarkAnalyze1MUsers3Variations5GoalsTimescale(b *testing.B) {
	url := pgtest.NewNativeTimescale(b)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Up(); err != nil {
		b.Fatal(err)
	}
	m.Close()
	a, done := setupExperimentOn(b, url, 1_000_000)
	defer done()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := a.Analyze(context.Background(), "p", "e")
		if err != nil {
			b.Fatal(err)
		}
		if res.Users+res.ExcludedUsers != 1_000_000 || len(res.Goals) != 5 {
			b.Fatalf("analysed %d+%d users, %d goals", res.Users, res.ExcludedUsers, len(res.Goals))
		}
	}
}

func TestAnalyzeCountsUsersAndExclusions(t *testing.T) {
	a, done := setupExperiment(t, 3000)
	defer done()
	res, err := a.Analyze(context.Background(), "p", "e")
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != 2940 || res.ExcludedUsers != 60 || len(res.Goals) != 5 {
		t.Fatalf("users %d excluded %d goals %d", res.Users, res.ExcludedUsers, len(res.Goals))
	}
	for _, g := range res.Goals {
		for _, v := range g.Variations {
			if v.Users == 0 || v.ProbabilityToBeBest < 0 || v.ProbabilityToBeBest > 1 {
				t.Fatalf("%s/%s: %+v", g.Goal, v.Variation, v)
			}
		}
	}
	if res.Goals[0].Role != "primary" || res.Goals[4].Role != "guardrail" {
		t.Fatalf("roles: %s ... %s", res.Goals[0].Role, res.Goals[4].Role)
	}
	r, err := a.Latest(context.Background(), "p", "e")
	if err != nil || len(r.Goals) != 5 || r.Verdict != res.Verdict {
		t.Fatalf("latest: %v %+v", err, r)
	}
}
