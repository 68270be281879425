package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// runQuery loads -rows evaluation events spread over -days days (in time order, as they arrive)
// into a fresh database, refreshes the rollups, and times the console's 30-day hourly stats
// query for one flag (the rollup) against the same question answered by scanning the raw events.
func runQuery(args []string) error {
	fs := flag.NewFlagSet("query", flag.ExitOnError)
	var c common
	c.register(fs, "vexil_bench_query")
	rows := fs.Int64("rows", 50_000_000, "events to load")
	days := fs.Int("days", 30, "days the events span, ending now")
	flags := fs.Int("flags", 20, "distinct flags")
	users := fs.Int("users", 100_000, "distinct users")
	workers := fs.Int("workers", 2, "concurrent loading sessions")
	runs := fs.Int("runs", 20, "timed runs of the rollup query (the raw scan runs 3 times)")
	skipLoad := fs.Bool("skip-load", false, "reuse the database loaded by a previous run")
	compress := fs.Bool("compress", true, "TimescaleDB: then compress one day's chunk of evaluation_events and print the ratio")
	useURL := fs.String("url", "", "use this (empty) database as it is instead of creating one, e.g. the TimescaleDB WASM server of deploy/pglite (add pool_max_conns=1)")
	_ = fs.Parse(args)
	ctx := context.Background()

	var dbURL string
	var err error
	switch {
	case *useURL != "":
		dbURL = *useURL
	case *skipLoad:
		dbURL, err = c.databaseURL()
	default:
		dbURL, err = c.freshDatabase(ctx, "")
	}
	if err != nil {
		return err
	}
	m, err := postgres.NewMigrator(dbURL)
	if err != nil {
		return err
	}
	if err := m.Up(); err != nil {
		return err
	}
	m.Close()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	if !strings.Contains(dbURL, "pool_max_conns") {
		cfg.MaxConns = int32(max(*workers, 2))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	ts, err := telemetry.HasTimescale(ctx, pool)
	if err != nil {
		return err
	}
	kind := "plain PostgreSQL (materialized views)"
	if ts {
		kind = "TimescaleDB (continuous aggregates)"
	}
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.Add(-time.Duration(*days) * 24 * time.Hour)
	fmt.Printf("query: %s, %d events over %d days, %d flags, %d users; %s\n", kind, *rows, *days, *flags, *users, machine())

	if !*skipLoad {
		t0 := time.Now()
		const chunk = 500_000
		var next int64
		var mu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		step := float64(end.Sub(start).Microseconds()) / float64(*rows)
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					lo := next
					next += chunk
					mu.Unlock()
					if lo >= *rows || firstErr != nil {
						return
					}
					hi := min(lo+chunk, *rows)
					_, err := pool.Exec(ctx, `INSERT INTO evaluation_events (occurred_at, event_id, project, environment, flag,
						  variation, reason, user_key, evaluations, received_at)
						SELECT t, lpad(to_hex(i), 32, '0')::uuid, 'bench', 'production', 'flag-' || (i % $4),
						       CASE WHEN (i / $4) % 2 = 0 THEN 'true' ELSE 'false' END, 'SPLIT', 'user-' || ((i * 7919) % $5), 1, t
						FROM generate_series($1::bigint, $2::bigint - 1) AS i,
						     LATERAL (SELECT $3::timestamptz + (i * $6::float8) * interval '1 microsecond' AS t) AS x`,
						lo, hi, start, *flags, *users, step)
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					if hi%(10*chunk) == 0 {
						fmt.Printf("  loaded %d rows (%.0f rows/s)\n", hi, float64(hi)/time.Since(t0).Seconds())
					}
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		fmt.Printf("loaded %d rows in %v\n", *rows, time.Since(t0).Round(time.Second))
		if _, err := pool.Exec(ctx, `ANALYZE evaluation_events`); err != nil {
			return err
		}
		for _, view := range telemetry.Rollups {
			t1 := time.Now()
			if ts {
				// A policy's run may hold the aggregate on a server whose jobs run (55P03): wait it out.
				for {
					_, err = pool.Exec(ctx, `CALL refresh_continuous_aggregate($1::regclass, NULL, NULL)`, view)
					if !telemetry.IsRefreshBusy(err) {
						break
					}
					time.Sleep(time.Second)
				}
			} else {
				err = telemetry.RecomputeRollup(ctx, pool, view)
			}
			if err != nil {
				return fmt.Errorf("refresh %s: %w", view, err)
			}
			fmt.Printf("refreshed %s in %v\n", view, time.Since(t1).Round(time.Millisecond))
		}
		if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
			return err
		}
	}
	var n, hourRows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM evaluation_events`).Scan(&n); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM evaluations_per_hour`).Scan(&hourRows); err != nil {
		return err
	}
	fmt.Printf("stored: %d raw events; evaluations_per_hour holds %d rows\n", n, hourRows)

	// The console's question: GET .../flags/flag-7/stats?interval=hour over the last 30 days.
	q := telemetry.StatsQuery{Project: "bench", Environment: "production", Interval: telemetry.Hour}
	q.From, q.To = telemetry.Hour.Align(end.Add(-30*24*time.Hour), end)
	var times []time.Duration
	var answer *telemetry.FlagStats
	for i := 0; i < *runs; i++ {
		t := time.Now()
		if answer, err = telemetry.FlagEvaluations(ctx, pool, q, "flag-7"); err != nil {
			return err
		}
		times = append(times, time.Since(t))
	}
	points := 0
	for _, v := range answer.Variations {
		points += len(v.Points)
	}
	slices.Sort(times)
	fmt.Printf("rollup: 30-day hourly stats of one flag (%d evaluations, %d points, with last-evaluated time): median %v, p95 %v, max %v over %d runs\n",
		answer.Evaluations, points, times[len(times)/2].Round(10*time.Microsecond), times[len(times)*95/100].Round(10*time.Microsecond),
		times[len(times)-1].Round(10*time.Microsecond), *runs)

	var raw []time.Duration
	var rawTotal int64
	for i := 0; i < 3; i++ {
		t := time.Now()
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(evaluations), 0) FROM (
			  SELECT date_bin('1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket, variation,
			         sum(evaluations) AS evaluations
			  FROM evaluation_events
			  WHERE project = 'bench' AND environment = 'production' AND flag = 'flag-7'
			    AND occurred_at >= $1 AND occurred_at < $2
			  GROUP BY 1, 2) s`, q.From, q.To).Scan(&rawTotal); err != nil {
			return err
		}
		raw = append(raw, time.Since(t))
	}
	slices.Sort(raw)
	fmt.Printf("raw scan: the same question from evaluation_events (%d evaluations): median %v over 3 runs (%.0fx the rollup)\n",
		rawTotal, raw[1].Round(time.Millisecond), float64(raw[1])/float64(times[len(times)/2]))
	if rawTotal != answer.Evaluations {
		return fmt.Errorf("the rollup (%d) and the raw scan (%d) disagree", answer.Evaluations, rawTotal)
	}
	if ts && *compress {
		return compressDay(ctx, pool, end.Add(-2*24*time.Hour))
	}
	return nil
}

// compressDay compresses the evaluation_events chunk that holds day (a whole day of events, as
// the compression policy would after VEXIL_TELEMETRY_COMPRESS_AFTER) and prints its size before
// and after, with its rows, and the same question answered from it compressed.
func compressDay(ctx context.Context, pool *pgxpool.Pool, day time.Time) error {
	var chunk string
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks
		WHERE hypertable_name = 'evaluation_events' AND range_start <= $1 AND range_end > $1`, day).Scan(&chunk); err != nil {
		return fmt.Errorf("the chunk of %s: %w", day, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+chunk).Scan(&rows); err != nil {
		return err
	}
	t := time.Now()
	if _, err := pool.Exec(ctx, `SELECT compress_chunk($1::regclass, if_not_compressed => true)`, chunk); err != nil {
		return fmt.Errorf("compress %s: %w", chunk, err)
	}
	took := time.Since(t)
	var before, after int64
	if err := pool.QueryRow(ctx, `SELECT before_compression_total_bytes, after_compression_total_bytes
		FROM chunk_compression_stats('evaluation_events') WHERE format('%I.%I', chunk_schema, chunk_name) = $1`, chunk).Scan(&before, &after); err != nil {
		return err
	}
	fmt.Printf("compression: one day's chunk of evaluation_events (%d rows): %.1f MiB with indexes (%.0f bytes/row) -> %.1f MiB compressed (%.0f bytes/row), ratio %.1fx, compressed in %v; %s\n",
		rows, float64(before)/(1<<20), float64(before)/float64(max(rows, 1)), float64(after)/(1<<20), float64(after)/float64(max(rows, 1)),
		float64(before)/float64(max(after, 1)), took.Round(time.Millisecond), machine())
	return nil
}

// databaseURL is the benchmark database's URL without recreating it.
func (c *common) databaseURL() (string, error) {
	return c.freshURL()
}
