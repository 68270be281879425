package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// database is a migrated database of one kind, with a pool.
type database struct {
	name      string
	timescale bool
	url       string
	pool      *pgxpool.Pool
}

// onBothDatabases runs fn on plain PostgreSQL (the real server) and on TimescaleDB (the native
// server, else the WASM build: pgtest.NewTimescale logs which), each freshly migrated.
func onBothDatabases(t *testing.T, fn func(t *testing.T, db database)) {
	for _, kind := range []struct {
		name      string
		url       func(testing.TB) string
		timescale bool
	}{
		{"postgresql", pgtest.NewDatabase, false},
		{"timescaledb", pgtest.NewTimescale, true},
	} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			db := database{name: kind.name, timescale: kind.timescale, url: kind.url(t)}
			m, err := postgres.NewMigrator(db.url)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Up(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			ctx := context.Background()
			if db.pool, err = postgres.Open(ctx, db.url); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(db.pool.Close)
			ts, err := telemetry.HasTimescale(ctx, db.pool)
			if err != nil || ts != db.timescale {
				t.Fatalf("vexil_has_timescale() = %v, %v on %s", ts, err, db.name)
			}
			fn(t, db)
		})
	}
}

func (db database) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (db database) write(t *testing.T, b *telemetry.Batch) telemetry.WriteResult {
	t.Helper()
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := telemetry.Write(context.Background(), db.pool, b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var base = time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func eval(flag, variation, user string, minute int) telemetry.EvaluationEvent {
	return telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: at(minute), Flag: flag,
		Variation: variation, Reason: "SPLIT", User: user}
}

func goal(key, user string, minute int, value *float64) telemetry.GoalEvent {
	return telemetry.GoalEvent{EventID: telemetry.NewEventID(), OccurredAt: at(minute), Goal: key, User: user, Value: value}
}

func ptr(f float64) *float64 { return &f }

// A batch is stored once: writing it again (a redelivered message) or its events in another
// batch (an SDK retry) adds nothing, and one failing statement rolls the whole batch back.
func TestWriteIsIdempotentAndAtomic(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		b := telemetry.NewBatch("p", "prod", time.Now())
		for i := 0; i < 50; i++ {
			e := eval("checkout", []string{"on", "off"}[i%2], "u"+string(rune('a'+i%10)), i)
			if i == 0 {
				e.Attributes = json.RawMessage(`{"country":"DE","beta":true}`)
				e.Experiment = "exp-1"
			}
			b.AddEvaluation(e)
		}
		b.AddGoal(goal("purchase", "ua", 55, ptr(12.5)))
		b.AddGoal(goal("purchase", "ub", 56, nil))
		res := db.write(t, b)
		if !res.NewBatch || res.Evaluations != 50 || res.Goals != 2 {
			t.Fatalf("first write %+v", res)
		}
		again := db.write(t, b)
		if again.NewBatch || again.Rows() != 0 || again.NewExposures != 0 || again.Attributions != 0 {
			t.Fatalf("second write of the same batch %+v", again)
		}
		retry := *b
		retry.ID = telemetry.NewEventID() // another message carrying the same events
		if r := db.write(t, &retry); !r.NewBatch || r.Rows() != 0 {
			t.Fatalf("the same events in another batch %+v", r)
		}
		if n := db.count(t, `SELECT count(*) FROM evaluation_events`); n != 50 {
			t.Fatalf("%d evaluation rows, want 50", n)
		}
		if n := db.count(t, `SELECT count(*) FROM goal_events WHERE value IS NULL`); n != 1 {
			t.Fatalf("%d goals without value, want 1", n)
		}
		if n := db.count(t, `SELECT count(*) FROM evaluation_events WHERE attributes->>'country' = 'DE' AND experiment = 'exp-1'`); n != 1 {
			t.Fatalf("attributes and experiment not stored (%d)", n)
		}
		if n := db.count(t, `SELECT count(*) FROM telemetry_batches`); n != 2 {
			t.Fatalf("%d batch log rows, want 2", n)
		}

		// Atomic: the evaluations statement fails (attributes that are not JSON, which Validate
		// would refuse), so the batch log row queued before it is not stored either.
		bad := telemetry.NewBatch("p", "prod", time.Now())
		e := eval("checkout", "on", "uz", 1)
		bad.AddEvaluation(e)
		bad.Evaluations.Attributes[0] = "{not json"
		if _, err := telemetry.Write(context.Background(), db.pool, bad); err == nil {
			t.Fatal("a batch with invalid attributes was stored")
		}
		if n := db.count(t, `SELECT count(*) FROM telemetry_batches WHERE batch_id = $1`, bad.ID); n != 0 {
			t.Fatal("a failed batch left its batch log row")
		}
	})
}

// Experiment units: the first exposure wins (an earlier one arriving late moves it), a second
// variation marks the user, and goals count per user after the first exposure, exactly once,
// whatever the order in which exposures and goals arrive.
func TestExposuresAndGoalAttribution(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		ctx := context.Background()
		write := func(evals []telemetry.EvaluationEvent, goals []telemetry.GoalEvent) *telemetry.Batch {
			b := telemetry.NewBatch("p", "prod", time.Now())
			for _, e := range evals {
				b.AddEvaluation(e)
			}
			for _, g := range goals {
				b.AddGoal(g)
			}
			db.write(t, b)
			return b
		}
		// alice: exposed to "on" at 10, converts at 20 and 30 (value 5 and 7).
		write([]telemetry.EvaluationEvent{eval("checkout", "on", "alice", 10), eval("checkout", "on", "alice", 15)}, nil)
		write(nil, []telemetry.GoalEvent{goal("purchase", "alice", 20, ptr(5)), goal("purchase", "alice", 30, ptr(7))})
		// bob: converts at 5 (before any exposure), then is exposed at 12 to "off" and at 14 to
		// "on" (two variations: marked), converts again at 40.
		write(nil, []telemetry.GoalEvent{goal("purchase", "bob", 5, ptr(1))})
		write([]telemetry.EvaluationEvent{eval("checkout", "off", "bob", 12)}, nil)
		write([]telemetry.EvaluationEvent{eval("checkout", "on", "bob", 14)}, []telemetry.GoalEvent{goal("purchase", "bob", 40, ptr(2))})
		// carol: converts at 50; her exposure at 45 arrives after the goal (late SDK flush), and
		// an even earlier exposure at 8 arrives last of all.
		write(nil, []telemetry.GoalEvent{goal("purchase", "carol", 50, ptr(3)), goal("signup", "carol", 9, nil)})
		write([]telemetry.EvaluationEvent{eval("checkout", "off", "carol", 45)}, nil)
		late := write([]telemetry.EvaluationEvent{eval("checkout", "off", "carol", 8)}, nil)
		// An experiment exposure is a unit of its own; a counter row (no user) exposes nobody.
		e := eval("checkout", "on", "dave", 1)
		e.Experiment = "exp-7"
		c := eval("checkout", "on", "", 1)
		c.Count = 1000
		write([]telemetry.EvaluationEvent{e, c}, []telemetry.GoalEvent{goal("purchase", "dave", 2, ptr(100))})
		// Redelivery of a batch changes nothing.
		if r := db.write(t, late); r.NewExposures != 0 || r.Attributions != 0 {
			t.Fatalf("redelivered exposure batch %+v", r)
		}

		type unit struct {
			variation string
			first     time.Time
			multiple  bool
		}
		units := map[string]unit{}
		rows, err := db.pool.Query(ctx, `SELECT user_key || '/' || subject_kind || ':' || subject, variation, first_exposed_at, multiple_variations
			FROM experiment_exposures WHERE project = 'p' AND environment = 'prod'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var u unit
			if err := rows.Scan(&k, &u.variation, &u.first, &u.multiple); err != nil {
				t.Fatal(err)
			}
			units[k] = u
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		want := map[string]unit{
			"alice/flag:checkout":   {"on", at(10), false},
			"bob/flag:checkout":     {"off", at(12), true},
			"carol/flag:checkout":   {"off", at(8), false},
			"dave/experiment:exp-7": {"on", at(1), false},
		}
		if len(units) != len(want) {
			t.Fatalf("units %v, want %v", units, want)
		}
		for k, w := range want {
			if g := units[k]; g.variation != w.variation || !g.first.Equal(w.first) || g.multiple != w.multiple {
				t.Errorf("unit %s = %+v, want %+v", k, g, w)
			}
		}

		type sums struct {
			n       int64
			sum, sq float64
		}
		got := map[string]sums{}
		rows, err = db.pool.Query(ctx, `SELECT user_key || '/' || subject || '/' || goal, conversions, value_sum, value_sum_squares FROM experiment_user_goals`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var s sums
			if err := rows.Scan(&k, &s.n, &s.sum, &s.sq); err != nil {
				t.Fatal(err)
			}
			got[k] = s
		}
		wantSums := map[string]sums{
			"alice/checkout/purchase": {2, 12, 74},
			"bob/checkout/purchase":   {1, 2, 4},     // the goal at 5 came before bob's first exposure
			"carol/checkout/purchase": {1, 3, 9},     // attributed when the exposure arrived
			"carol/checkout/signup":   {1, 0, 0},     // at 9: after the late exposure at 8 moved first_exposed_at
			"dave/exp-7/purchase":     {1, 100, 1e4}, // the experiment, not the flag
		}
		if len(got) != len(wantSums) {
			t.Fatalf("per-user goals %v, want %v", got, wantSums)
		}
		for k, w := range wantSums {
			if got[k] != w {
				t.Errorf("per-user goals %s = %+v, want %+v", k, got[k], w)
			}
		}
		if n := db.count(t, `SELECT count(*) FROM goal_attributions`); n != 6 {
			t.Fatalf("%d attributions, want 6", n)
		}

		// The repair pass finds a goal stored without its attribution (as when a goal and its
		// user's first exposure are stored concurrently), exactly once.
		if _, err := db.pool.Exec(ctx, `INSERT INTO goal_events (occurred_at, event_id, project, environment, goal, user_key, value, received_at)
			VALUES ($1, $2, 'p', 'prod', 'purchase', 'alice', 4, now())`, at(60), telemetry.NewEventID()); err != nil {
			t.Fatal(err)
		}
		for i, want := range []int64{1, 0} {
			n, err := telemetry.Reattribute(ctx, db.pool, time.Now().Add(-time.Hour))
			if err != nil || n != want {
				t.Fatalf("re-attribution pass %d: %d, %v; want %d", i, n, err, want)
			}
		}
		if n := db.count(t, `SELECT conversions FROM experiment_user_goals WHERE user_key = 'alice'`); n != 3 {
			t.Fatalf("alice has %d conversions after the repair, want 3", n)
		}
	})
}

// The rollups, after a manual refresh, answer the stats queries; on TimescaleDB the rollups
// are materialized (they still answer once the raw rows are gone).
func TestRollupsAndStatsQueries(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		ctx := context.Background()
		// Two hours of evaluations: minute m serves "on" to user m%7 and "off" to user m%5.
		b := telemetry.NewBatch("p", "prod", time.Now())
		for m := 0; m < 120; m++ {
			b.AddEvaluation(eval("checkout", "on", "u"+itoa(m%7), m))
			b.AddEvaluation(eval("checkout", "off", "u"+itoa(m%5), m))
			if m%30 == 0 {
				b.AddGoal(goal("purchase", "u"+itoa(m%7), m+1, ptr(float64(m))))
			}
		}
		counter := eval("checkout", "on", "", 5)
		counter.Count = 500
		b.AddEvaluation(counter)
		b.AddEvaluation(eval("banner", "blue", "u1", 3))
		db.write(t, b)
		if _, err := db.pool.Exec(ctx, `INSERT INTO rm_flags (project, key, name, type, client_side, state, version, created_at, updated_at)
			VALUES ('p', 'checkout', 'Checkout', 'boolean', false, '{}', 1, now() - interval '90 days', now()),
			       ('p', 'banner', 'Banner', 'string', false, '{}', 1, now() - interval '90 days', now()),
			       ('p', 'unused', 'Unused', 'boolean', false, '{}', 1, now() - interval '90 days', now()),
			       ('p', 'fresh', 'Fresh', 'boolean', false, '{}', 1, now(), now())`); err != nil {
			t.Fatal(err)
		}
		if err := telemetry.RefreshRollups(ctx, db.pool, time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if db.timescale {
			// Materialized: the continuous aggregates keep answering without the raw rows (the
			// invalidation they cause is only applied by the next refresh).
			if _, err := db.pool.Exec(ctx, `DELETE FROM evaluation_events`); err != nil {
				t.Fatal(err)
			}
		}

		q := telemetry.StatsQuery{Project: "p", Environment: "prod", Interval: telemetry.Hour}
		q.From, q.To = telemetry.Hour.Align(base.Add(-time.Hour), base.Add(3*time.Hour))
		s, err := telemetry.FlagEvaluations(ctx, db.pool, q, "checkout")
		if err != nil {
			t.Fatal(err)
		}
		if s.Evaluations != 740 || len(s.Variations) != 2 || s.Variations[0].Variation != "off" ||
			s.Variations[0].Evaluations != 120 || s.Variations[1].Evaluations != 620 || len(s.Variations[1].Points) != 2 {
			t.Fatalf("hourly stats %+v", s)
		}
		if p := s.Variations[1].Points[0]; !p.Time.Equal(base) || p.Evaluations != 560 || p.Users != nil {
			t.Fatalf("first hour of on: %+v", p)
		}
		if s.LastEvaluatedAt == nil || !s.LastEvaluatedAt.Equal(at(119)) {
			t.Fatalf("last evaluated %v, want %v", s.LastEvaluatedAt, at(119))
		}

		q.Interval = telemetry.Minute
		q.From, q.To = telemetry.Minute.Align(at(0), at(10))
		s, err = telemetry.FlagEvaluations(ctx, db.pool, q, "checkout")
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Variations) != 2 || len(s.Variations[1].Points) != 10 || s.Variations[1].Points[5].Evaluations != 501 ||
			s.Variations[1].Points[5].Users == nil || *s.Variations[1].Points[5].Users != 1 {
			t.Fatalf("minute stats %+v", s)
		}

		q.Interval = telemetry.Day
		q.From, q.To = telemetry.Day.Align(base.Add(-48*time.Hour), base.Add(24*time.Hour))
		s, err = telemetry.FlagEvaluations(ctx, db.pool, q, "checkout")
		if err != nil {
			t.Fatal(err)
		}
		if s.Evaluations != 740 {
			t.Fatalf("daily stats %+v", s)
		}

		stale := time.Now().Add(-30 * 24 * time.Hour)
		flags, err := telemetry.FlagsActivity(ctx, db.pool, "p", "prod", &stale)
		if err != nil {
			t.Fatal(err)
		}
		if len(flags) != 1 || flags[0].Flag != "unused" || flags[0].LastEvaluatedAt != nil {
			t.Fatalf("stale flags %+v", flags)
		}
		all, err := telemetry.FlagsActivity(ctx, db.pool, "p", "prod", nil)
		if err != nil || len(all) != 4 {
			t.Fatalf("flags activity %+v, %v", all, err)
		}

		gq := telemetry.StatsQuery{Project: "p", Environment: "prod", Interval: telemetry.Hour}
		gq.From, gq.To = telemetry.Hour.Align(base, base.Add(2*time.Hour))
		g, err := telemetry.GoalConversions(ctx, db.pool, gq, "purchase", "flag", "checkout")
		if err != nil {
			t.Fatal(err)
		}
		// Goals at minutes 1, 31, 61, 91 with values 0, 30, 60, 90.
		if g.Total.Conversions != 4 || g.Total.ValueSum != 180 || g.Total.ValueSumSquares != 12600 || len(g.Total.Points) != 2 {
			t.Fatalf("goal totals %+v", g.Total)
		}
		if g.Total.Points[0].Users == nil || *g.Total.Points[0].Users != 2 {
			t.Fatalf("goal users in the first hour %+v", g.Total.Points[0])
		}
		var attributed int64
		for _, v := range g.Variations {
			attributed += v.Conversions
		}
		if len(g.Variations) == 0 || attributed == 0 {
			t.Fatalf("goal per variation %+v", g.Variations)
		}
		gq.Interval = telemetry.Day
		gq.From, gq.To = telemetry.Day.Align(base, base.Add(2*time.Hour))
		if g, err = telemetry.GoalConversions(ctx, db.pool, gq, "purchase", "", ""); err != nil || g.Total.Conversions != 4 || g.Variations != nil {
			t.Fatalf("daily goal totals %+v, %v", g, err)
		}
		if n := db.count(t, `SELECT coalesce(sum(batches), 0) FROM telemetry_ingest_per_minute`); n != 1 {
			t.Fatalf("ingest rollup has %d batches, want 1", n)
		}
	})
}

// Storage policies follow the configuration on TimescaleDB (and are left alone when already
// there); plain PostgreSQL deletes expired rows instead.
func TestPoliciesAndRetention(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		ctx := context.Background()
		p := telemetry.Policies{ChunkInterval: 12 * time.Hour, CompressAfter: 3 * 24 * time.Hour, Retention: 30 * 24 * time.Hour}
		changed, err := telemetry.ApplyPolicies(ctx, db.pool, p)
		if err != nil {
			t.Fatal(err)
		}
		if db.timescale {
			if changed != 9 {
				t.Fatalf("%d policy changes, want 9 (3 tables x chunk, compression, retention)", changed)
			}
			if again, err := telemetry.ApplyPolicies(ctx, db.pool, p); err != nil || again != 0 {
				t.Fatalf("re-applying the same policies: %d changes, %v", again, err)
			}
			if n := db.count(t, `SELECT count(*) FROM timescaledb_information.jobs
				WHERE hypertable_name = 'evaluation_events' AND proc_name = 'policy_retention' AND config->>'drop_after' = '30 days'`); n != 1 {
				t.Fatal("retention policy not set")
			}
			if n := db.count(t, `SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'`); n != 8 {
				t.Fatalf("%d refresh policies, want 8", n)
			}
			return
		}
		if changed != 0 {
			t.Fatalf("%d policy changes on plain PostgreSQL", changed)
		}
		old := telemetry.NewBatch("p", "prod", time.Now())
		e := eval("checkout", "on", "u", 0)
		e.OccurredAt = time.Now().Add(-40 * 24 * time.Hour)
		old.AddEvaluation(e)
		old.AddEvaluation(eval("checkout", "on", "u", 1))
		db.write(t, old)
		n, err := telemetry.DeleteExpired(ctx, db.pool, p.Retention)
		if err != nil || n != 1 {
			t.Fatalf("deleted %d, %v; want 1", n, err)
		}
		if n := db.count(t, `SELECT count(*) FROM evaluation_events`); n != 1 {
			t.Fatalf("%d rows left, want 1", n)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// A Writer's unit cache only skips work: random batches (late and early exposures, several
// variations, goals before and after) leave the same units, attributions and per-user sums as
// writing without a cache, also when the cache is small enough to forget.
func TestWriterCacheIsOnlyAnOptimization(t *testing.T) {
	db := database{name: "postgresql", url: pgtest.NewDatabase(t)}
	m, err := postgres.NewMigrator(db.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	ctx := context.Background()
	if db.pool, err = postgres.Open(ctx, db.url); err != nil {
		t.Fatal(err)
	}
	defer db.pool.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	cached := telemetry.NewWriter(7)
	for i := 0; i < 300; i++ {
		var batches [2]*telemetry.Batch
		for j, env := range []string{"plain", "cached"} {
			batches[j] = telemetry.NewBatch("p", env, time.Now())
		}
		for n := rng.IntN(6) + 1; n > 0; n-- {
			minute := rng.IntN(120)
			user := "u" + strconv.Itoa(rng.IntN(5))
			if rng.IntN(4) == 0 {
				g := goal("purchase", user, minute, ptr(float64(rng.IntN(10))))
				for _, b := range batches {
					g.EventID = telemetry.NewEventID() // event ids are unique across environments
					b.AddGoal(g)
				}
				continue
			}
			e := eval("f"+strconv.Itoa(rng.IntN(2)), []string{"a", "b", "b", "b"}[rng.IntN(4)], user, minute)
			if rng.IntN(5) == 0 {
				e.Experiment = "x"
			}
			for _, b := range batches {
				e.EventID = telemetry.NewEventID()
				b.AddEvaluation(e)
			}
		}
		if _, err := telemetry.Write(ctx, db.pool, batches[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := cached.Write(ctx, db.pool, batches[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`SELECT user_key, subject_kind, subject, variation, first_exposed_at::text, multiple_variations FROM experiment_exposures WHERE environment = $1`,
		`SELECT user_key, subject_kind, subject, goal, conversions, value_sum, value_sum_squares, first_at::text, last_at::text FROM experiment_user_goals WHERE environment = $1`,
		`SELECT user_key, subject_kind, subject, variation, occurred_at::text FROM goal_attributions WHERE environment = $1`,
	} {
		rows := map[string][]string{}
		for _, env := range []string{"plain", "cached"} {
			rows[env] = sortedRows(ctx, t, db.pool, q, env)
		}
		if len(rows["plain"]) == 0 || strings.Join(rows["plain"], "\n") != strings.Join(rows["cached"], "\n") {
			t.Fatalf("%s\nwithout cache:\n%s\nwith cache:\n%s", q, strings.Join(rows["plain"], "\n"), strings.Join(rows["cached"], "\n"))
		}
	}
	if n := db.count(t, `SELECT count(*) FROM experiment_exposures WHERE environment = 'plain' AND multiple_variations`); n == 0 {
		t.Fatal("the random batches never marked a user: the test proves little")
	}
}

// On plain PostgreSQL the hour and day rollups keep their buckets after the raw rows are gone
// (retention), as TimescaleDB's continuous aggregates do: a refresh recomputes only the recent
// window, so history outlives raw retention instead of ending with it.
func TestPlainRollupsKeepHistoryBeyondRawRetention(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		if db.timescale {
			return // continuous aggregates: TimescaleDB's own retention policies, tested above
		}
		ctx := context.Background()
		for _, table := range []string{"evaluations_per_hour", "evaluations_per_day", "goals_per_hour", "goals_per_day",
			"goal_variations_per_hour", "goal_variations_per_day"} {
			if n := db.count(t, `SELECT count(*) FROM pg_class WHERE relname = $1 AND relkind = 'r'`, table); n != 1 {
				t.Fatalf("%s is not a table on plain PostgreSQL", table)
			}
		}
		// Two days ago: within the refresh window, inside raw retention.
		then := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)
		b := telemetry.NewBatch("p", "prod", time.Now())
		for i := range 5 {
			e := eval("checkout", "on", "u"+itoa(i), 0)
			e.OccurredAt = then
			b.AddEvaluation(e)
		}
		g := goal("purchase", "u1", 0, ptr(10))
		g.OccurredAt = then.Add(time.Minute)
		b.AddGoal(g)
		db.write(t, b)
		if err := telemetry.RefreshRollups(ctx, db.pool, time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		hour := `SELECT coalesce(sum(evaluations), 0) FROM evaluations_per_hour WHERE flag = 'checkout'`
		day := `SELECT coalesce(sum(evaluations), 0) FROM evaluations_per_day WHERE flag = 'checkout'`
		goals := `SELECT coalesce(sum(conversions), 0) FROM goals_per_hour WHERE goal = 'purchase'`
		if db.count(t, hour) != 5 || db.count(t, day) != 5 || db.count(t, goals) != 1 {
			t.Fatalf("after the first refresh: hour %d, day %d, goals %d", db.count(t, hour), db.count(t, day), db.count(t, goals))
		}
		// Ten days later the raw rows have expired; the refreshes since then leave those buckets be.
		if _, err := db.pool.Exec(ctx, `DELETE FROM evaluation_events; DELETE FROM goal_events; DELETE FROM goal_attributions`); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(10 * 24 * time.Hour)
		if err := telemetry.RefreshRollups(ctx, db.pool, time.Time{}, later); err != nil {
			t.Fatal(err)
		}
		if db.count(t, hour) != 5 || db.count(t, day) != 5 || db.count(t, goals) != 1 {
			t.Fatalf("hour rollup history lost with the raw rows: hour %d, day %d, goals %d", db.count(t, hour), db.count(t, day), db.count(t, goals))
		}
		// Within the window a bucket is recomputed: raw rows gone there mean the bucket goes too
		// (as a continuous aggregate's refresh would), so the window must stay inside retention.
		if err := telemetry.RefreshRollups(ctx, db.pool, time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if db.count(t, hour) != 0 {
			t.Fatalf("a bucket inside the refresh window kept rows its raw events no longer have: %d", db.count(t, hour))
		}
		// Expiry of the hour level is TimescaleDB's: 400 days.
		if _, err := db.pool.Exec(ctx, `INSERT INTO evaluations_per_hour (bucket, project, environment, flag, variation, evaluations, last_evaluated_at)
			VALUES (now() - interval '401 days', 'p', 'prod', 'old', 'on', 3, now() - interval '401 days'),
			       (now() - interval '300 days', 'p', 'prod', 'old', 'on', 4, now() - interval '300 days')`); err != nil {
			t.Fatal(err)
		}
		if _, err := telemetry.DeleteExpired(ctx, db.pool, 90*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := db.count(t, `SELECT coalesce(sum(evaluations), 0) FROM evaluations_per_hour WHERE flag = 'old'`); n != 4 {
			t.Fatalf("after expiry: %d evaluations of 'old' left, want 4 (the 300-day-old bucket)", n)
		}
	})
}

// WriteAll stores several batches in one transaction exactly as writing them one by one would:
// random batches (late and early exposures, several variations, goals before and after) leave
// the same units, attributions and per-user sums whether written one by one or in groups, also
// with a batch of another environment in every group, a message delivered twice within one
// group, and the same events again under another batch id (an SDK retry).
func TestWriteAllEqualsWritingOneByOne(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, db database) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(3, 4))
		grouped := telemetry.NewWriter(50)
		var others, otherEvents int64
		for round := 0; round < 40; round++ {
			var group []*telemetry.Batch
			for n := rng.IntN(6) + 1; n > 0; n-- {
				one, many := telemetry.NewBatch("p", "one", time.Now()), telemetry.NewBatch("p", "many", time.Now())
				for k := rng.IntN(8) + 1; k > 0; k-- {
					minute, user := rng.IntN(120), "u"+strconv.Itoa(rng.IntN(6))
					if rng.IntN(4) == 0 {
						g := goal("purchase", user, minute, ptr(float64(rng.IntN(10))))
						one.AddGoal(g)
						g.EventID = telemetry.NewEventID()
						many.AddGoal(g)
						continue
					}
					e := eval("f"+strconv.Itoa(rng.IntN(2)), []string{"a", "b", "b"}[rng.IntN(3)], user, minute)
					if rng.IntN(5) == 0 {
						e.Experiment = "x"
					}
					one.AddEvaluation(e)
					e.EventID = telemetry.NewEventID()
					many.AddEvaluation(e)
				}
				db.write(t, one)
				group = append(group, many)
				switch rng.IntN(6) {
				case 0: // the same message twice in the group
					group = append(group, many)
				case 1: // the same events in another message
					retry := *many
					retry.ID = telemetry.NewEventID()
					group = append(group, &retry)
				}
			}
			other := telemetry.NewBatch("p", "other", time.Now())
			other.AddEvaluation(eval("f0", "a", "u0", rng.IntN(120)))
			other.AddGoal(goal("purchase", "u0", rng.IntN(120), nil))
			group = append(group, other)
			others, otherEvents = others+1, otherEvents+2
			res, isNew, err := grouped.WriteAll(ctx, db.pool, group)
			if err != nil {
				t.Fatal(err)
			}
			seen, fresh := map[any]bool{}, 0
			for i, b := range group {
				if isNew[i] != !seen[b.ID] {
					t.Fatalf("round %d: batch %d (%s) new = %v", round, i, b.ID, isNew[i])
				}
				if !seen[b.ID] {
					fresh++
				}
				seen[b.ID] = true
			}
			if res.NewBatches != fresh || res.NewBatch != (fresh == len(group)) {
				t.Fatalf("round %d: %+v for %d batches of which %d new", round, res, len(group), fresh)
			}
			// Written again (a redelivered group): nothing new.
			if again, isNew, err := grouped.WriteAll(ctx, db.pool, group); err != nil || again.NewBatches != 0 || again.Rows() != 0 ||
				again.NewExposures != 0 || again.Attributions != 0 || isNew[0] {
				t.Fatalf("round %d: the group written again: %+v, %v", round, again, err)
			}
		}
		for _, q := range []string{
			`SELECT count(*)::text FROM evaluation_events WHERE environment = $1`,
			`SELECT count(*)::text FROM goal_events WHERE environment = $1`,
			`SELECT user_key, subject_kind, subject, variation, first_exposed_at::text, multiple_variations FROM experiment_exposures WHERE environment = $1`,
			`SELECT user_key, subject_kind, subject, goal, conversions, value_sum, value_sum_squares, first_at::text, last_at::text FROM experiment_user_goals WHERE environment = $1`,
			// Not the variation: an attribution records the variation of the first exposure known
			// when it was made, and a group stores its evaluations before its goals, as one batch
			// does, so arrival order decides it (as it does between batches written one by one).
			`SELECT user_key, subject_kind, subject, occurred_at::text FROM goal_attributions WHERE environment = $1`,
		} {
			rows := map[string][]string{}
			for _, env := range []string{"one", "many"} {
				rows[env] = sortedRows(ctx, t, db.pool, q, env)
			}
			if len(rows["one"]) == 0 || strings.Join(rows["one"], "\n") != strings.Join(rows["many"], "\n") {
				t.Fatalf("%s\none by one:\n%s\nin groups:\n%s", q, strings.Join(rows["one"], "\n"), strings.Join(rows["many"], "\n"))
			}
		}
		if n := db.count(t, `SELECT count(*) FROM experiment_exposures WHERE environment = 'one' AND multiple_variations`); n == 0 {
			t.Fatal("the random batches never marked a user: the test proves little")
		}
		if n := db.count(t, `SELECT (SELECT count(*) FROM evaluation_events WHERE environment = 'other') + (SELECT count(*) FROM goal_events WHERE environment = 'other')`); n != otherEvents {
			t.Fatalf("%d events of the other environment stored, want %d", n, otherEvents)
		}
		if n := db.count(t, `SELECT count(*) FROM telemetry_batches WHERE environment = 'other'`); n != others {
			t.Fatalf("%d batch log rows of the other environment, want %d", n, others)
		}
	})
}

// sortedRows runs q with args and returns its rows, each printed, sorted: two writes of the same
// events compare equal whatever order their rows were stored in.
func sortedRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool, q string, args ...any) []string {
	t.Helper()
	r, err := pool.Query(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for r.Next() {
		v, err := r.Values()
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprint(v))
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	sort.Strings(rows)
	return rows
}
