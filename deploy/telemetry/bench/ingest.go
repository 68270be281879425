package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	ptelemetry "github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
)

const adminToken = "vxl_bench-admin-token-0123456789abcdef"

// generator makes the benchmark's events: event number k is an evaluation of flag k%flags,
// variation k%2, by user (k*7919)%users (every goalEvery-th event a goal of the next event's
// user instead), with
// an event id derived from k, so the direct-insert pass can write the very same rows.
type generator struct {
	flags, users, goalEvery int
	runID                   uint32
}

func (g generator) eventID(k int64) uuid.UUID {
	var id uuid.UUID
	id[0], id[1], id[2], id[3] = byte(g.runID>>24), byte(g.runID>>16), byte(g.runID>>8), byte(g.runID)
	id[6] = 0x70 // version 7 layout
	id[8] = 0x80 // RFC 4122 variant
	for i := 0; i < 7; i++ {
		id[15-i] = byte(k >> (8 * i))
	}
	return id
}

// goalUser is the user of goal event k: the user of evaluation k+1, so goals have exposures.
func (g generator) goalUser(k int64) int64 { return ((k + 1) * 7919) % int64(g.users) }

func (g generator) isGoal(k int64) bool {
	return g.goalEvery > 0 && k%int64(g.goalEvery) == int64(g.goalEvery-1)
}

var variations = [2]string{"true", "false"}

// appendBody writes a POST /sdk/v1/events body of events k0..k0+n-1.
func (g generator) appendBody(buf []byte, k0 int64, n int, at time.Time) []byte {
	ts := at.UTC().Format(time.RFC3339Nano)
	buf = append(buf, `{"events":[`...)
	for k := k0; k < k0+int64(n); k++ {
		if k > k0 {
			buf = append(buf, ',')
		}
		id := g.eventID(k)
		if g.isGoal(k) {
			buf = append(buf, `{"kind":"goal","goal_key":"purchase","value":`...)
			buf = strconv.AppendInt(buf, k%100, 10)
			buf = append(buf, `,"user_key":"user-`...)
			buf = strconv.AppendInt(buf, g.goalUser(k), 10)
		} else {
			buf = append(buf, `{"kind":"evaluation","flag_key":"flag-`...)
			buf = strconv.AppendInt(buf, k%int64(g.flags), 10)
			buf = append(buf, `","variation_key":"`...)
			buf = append(buf, variations[k%2]...)
			buf = append(buf, `","reason":"SPLIT","user_key":"user-`...)
			buf = strconv.AppendInt(buf, (k*7919)%int64(g.users), 10)
		}
		buf = append(buf, `","event_id":"`...)
		buf = append(buf, id.String()...)
		buf = append(buf, `","occurred_at":"`...)
		buf = append(buf, ts...)
		buf = append(buf, `"}`...)
	}
	return append(buf, "]}"...)
}

// batch builds the same events as a stored batch (for the direct pass).
func (g generator) batch(project, env string, k0 int64, n int, at time.Time) *ptelemetry.Batch {
	b := ptelemetry.NewBatch(project, env, at)
	for k := k0; k < k0+int64(n); k++ {
		user := "user-" + strconv.FormatInt((k*7919)%int64(g.users), 10)
		if g.isGoal(k) {
			v := float64(k % 100)
			b.AddGoal(ptelemetry.GoalEvent{EventID: g.eventID(k), OccurredAt: at, Goal: "purchase",
				User: "user-" + strconv.FormatInt(g.goalUser(k), 10), Value: &v})
			continue
		}
		b.AddEvaluation(ptelemetry.EvaluationEvent{EventID: g.eventID(k), OccurredAt: at,
			Flag: "flag-" + strconv.FormatInt(k%int64(g.flags), 10), Variation: variations[k%2], Reason: "SPLIT", User: user})
	}
	return b
}

func runIngest(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	var c common
	c.register(fs, "vexil_bench_ingest")
	duration := fs.Duration("duration", 60*time.Second, "how long to post")
	conns := fs.Int("connections", 8, "concurrent keep-alive HTTP connections")
	size := fs.Int("batch", 100, "events per request")
	workers := fs.Int("workers", 4, "telemetry projector workers (concurrent writes)")
	group := fs.Int("group-messages", 8, "telemetry-group-messages: messages one projector write may store together (1: each alone)")
	users := fs.Int("users", 10000, "distinct users")
	flags := fs.Int("flags", 20, "distinct flags")
	goalEvery := fs.Int("goal-every", 0, "one goal event every N events (0: evaluations only)")
	maxLag := fs.Int("max-lag", 1000, "telemetry-max-lag")
	direct := fs.Bool("direct", true, "then insert the same rows straight into the tables, for the ratio")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (load generator and platform) while posting")
	directOnly := fs.Int64("direct-only", 0, "skip HTTP: insert this many rows straight into fresh tables and exit")
	_ = fs.Parse(args)
	ctx := context.Background()
	if *directOnly > 0 {
		return directOnlyRun(ctx, &c, generator{flags: *flags, users: *users, goalEvery: *goalEvery, runID: uint32(time.Now().Unix())},
			*directOnly, *size, *workers)
	}

	dbURL, err := c.freshDatabase(ctx, "")
	if err != nil {
		return err
	}
	cfg, err := config.Parse("bench", []string{"--database-url", dbURL, "--redis-url", c.redisURL,
		"--stream-prefix", prefix("ingest"), "--http-addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--telemetry-workers", strconv.Itoa(*workers), "--telemetry-group-messages", strconv.Itoa(*group),
		"--telemetry-max-lag", strconv.Itoa(*maxLag),
		"--telemetry-stream-maxlen", strconv.Itoa(20 * *maxLag)}, func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	p, err := platform.Open(ctx, cfg, c.logger())
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Start(ctx); err != nil {
		return err
	}
	base := "http://" + p.Addr
	key, err := setupProject(base, "bench", *flags)
	if err != nil {
		return err
	}
	gen := generator{flags: *flags, users: *users, goalEvery: *goalEvery, runID: uint32(time.Now().Unix())}
	fmt.Printf("ingest: %d connections, batches of %d, %d projector workers storing up to %d messages per write, %d users, %d flags, goal every %d; %s\n",
		*conns, *size, *workers, *group, *users, *flags, *goalEvery, machine())

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
	}
	var next, accepted atomic.Int64
	var statuses sync.Map
	cpu := startCPUSampler(p.Pool, c.database)
	start := time.Now()
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			var buf []byte
			for time.Now().Before(deadline) {
				k0 := next.Add(int64(*size)) - int64(*size)
				buf = gen.appendBody(buf[:0], k0, *size, time.Now())
				req, _ := http.NewRequest("POST", base+"/sdk/v1/events", bytes.NewReader(buf))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					count(&statuses, "error")
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				count(&statuses, strconv.Itoa(res.StatusCode))
				switch res.StatusCode {
				case http.StatusAccepted:
					accepted.Add(int64(*size))
				case http.StatusTooManyRequests, http.StatusServiceUnavailable:
					time.Sleep(100 * time.Millisecond) // a real SDK honours Retry-After; keep pressure on
				}
			}
		}()
	}
	wg.Wait()
	posted := time.Since(start)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	want := accepted.Load()
	fmt.Printf("posted for %v: %d events accepted (202) = %.0f events/s at the edge; answers %s\n",
		posted.Round(time.Millisecond), want, float64(want)/posted.Seconds(), statusSummary(&statuses))

	// Drain: every accepted event stored (deduplicated by the unique index).
	var stored int64
	for {
		if err := p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM evaluation_events) + (SELECT count(*) FROM goal_events)`).Scan(&stored); err != nil {
			return err
		}
		if stored >= want || time.Since(start) > *duration+10*time.Minute {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e2e := time.Since(start)
	selfCPU, pgCPU := cpu.result()
	var distinct int64
	if err := p.Pool.QueryRow(ctx, `SELECT count(DISTINCT event_id) FROM evaluation_events`).Scan(&distinct); err != nil {
		return err
	}
	fmt.Printf("end to end: %d rows stored (%d distinct evaluation event ids) in %v (drain %v after posting stopped) = %.0f events/s sustained HTTP -> Redis -> projector -> table\n",
		stored, distinct, e2e.Round(time.Millisecond), (e2e - posted).Round(time.Millisecond), float64(stored)/e2e.Seconds())
	fmt.Printf("CPU: this process (load generator + platform) %.1f s = %.1f µs/event; PostgreSQL backends of the database %.1f s = %.1f µs/event; over %.1f s on %d cores; %s\n",
		selfCPU, 1e6*selfCPU/float64(max(stored, 1)), pgCPU, 1e6*pgCPU/float64(max(stored, 1)), e2e.Seconds(), runtime.NumCPU(), machine())
	e2eRate := float64(stored) / e2e.Seconds()
	e2eCPU := (selfCPU + pgCPU) / float64(max(stored, 1))
	p.Close()
	if !*direct {
		return nil
	}

	// Direct: the same rows, same batch size, as many writers as projector workers, straight
	// into the tables (no HTTP, no Redis), on fresh tables.
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	pcfg.MaxConns = int32(*workers) + 1 // and the CPU sampler's
	dpool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer dpool.Close()
	passes := []struct {
		full  bool
		group int
	}{{true, 1}, {false, 1}}
	if *group > 1 {
		// The projector stores up to -group-messages messages per transaction: the same
		// grouping without HTTP and Redis is the bound of what grouping alone can give.
		passes = append(passes, struct {
			full  bool
			group int
		}{true, *group})
	}
	for _, pass := range passes {
		if _, err := dpool.Exec(ctx, `TRUNCATE evaluation_events, goal_events, goal_attributions, experiment_exposures,
			experiment_user_goals, experiment_touched_users, telemetry_batches`); err != nil {
			return err
		}
		if _, err := dpool.Exec(ctx, `CHECKPOINT`); err != nil {
			return err
		}
		if err := warm(ctx, dpool, *workers+1); err != nil {
			return err
		}
		cpu := startCPUSampler(dpool, c.database)
		rate, err := directInsert(ctx, dpool, gen, want, *size, *workers, pass.full, pass.group)
		self, pg := cpu.result()
		if err != nil {
			return err
		}
		directCPU := (self + pg) / float64(want)
		what := "the projector's whole write (events, exposures, attributions, batch log)"
		if !pass.full {
			what = "the evaluation_events INSERT ... SELECT FROM unnest ... ON CONFLICT alone"
		}
		if pass.group > 1 {
			what = fmt.Sprintf("the projector's whole write, %d batches per transaction as the projector groups them", pass.group)
		}
		// The load beside each figure: on a shared machine it moves between the passes, and the
		// ratios with it.
		// CPU per row is steadier than the rate on a shared machine: its ratio says how much CPU
		// the whole path spends per event beside the insert alone, whatever the load did.
		fmt.Printf("direct: %d rows, %d writers, batches of %d, %s: %.0f rows/s; end to end / direct = %.2f; CPU %.1f µs/row (this process + PostgreSQL), direct / end to end = %.2f; %s\n",
			want, *workers, *size, what, rate, e2eRate/rate, 1e6*directCPU, directCPU/e2eCPU, machine())
	}
	return nil
}

// warm opens n connections of pool, so the CPU sampler sees every backend from its start.
func warm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

func count(m *sync.Map, status string) {
	v, _ := m.LoadOrStore(status, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func statusSummary(m *sync.Map) string {
	s := ""
	m.Range(func(k, v any) bool {
		s += fmt.Sprintf("%s x%d ", k, v.(*atomic.Int64).Load())
		return true
	})
	return s
}

// directInsert writes rows as writers concurrent writers, in batches of size events, group
// batches per transaction (WriteAll) when full, else only the evaluation_events insert.
func directInsert(ctx context.Context, pool *pgxpool.Pool, gen generator, rows int64, size, writers int, full bool, group int) (float64, error) {
	var next atomic.Int64
	writer := ptelemetry.NewWriter(250_000) // as the projector's
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batches []*ptelemetry.Batch
			for {
				batches = batches[:0]
				for len(batches) < max(group, 1) {
					k0 := next.Add(int64(size)) - int64(size)
					if k0 >= rows {
						break
					}
					batches = append(batches, gen.batch("bench", "production", k0, int(min(int64(size), rows-k0)), time.Now()))
				}
				if len(batches) == 0 {
					return
				}
				var err error
				if full {
					_, _, err = writer.WriteAll(ctx, pool, batches)
				} else {
					b := batches[0]
					e := &b.Evaluations
					_, err = pool.Exec(ctx, `INSERT INTO evaluation_events (occurred_at, event_id, project, environment, flag, variation,
						reason, user_key, experiment, attributes, evaluations, received_at)
						SELECT t, id, $3, $4, f, v, r, NULLIF(u, ''), NULLIF(x, ''), NULLIF(a, '')::jsonb, n, $12
						FROM unnest($1::timestamptz[], $2::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
						            $10::text[], $11::int4[]) AS e(t, id, f, v, r, u, x, a, n)
						ON CONFLICT (event_id, occurred_at) DO NOTHING`,
						[]time.Time(e.OccurredAt), e.EventID.PG(), b.Project, b.Environment, e.Flag, e.Variation, e.Reason, e.User, e.Experiment,
						e.Attributes, e.Count, b.ReceivedAt)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(rows) / time.Since(start).Seconds(), nil
}

// setupProject creates a project with flags through the management API and returns the
// production server key once the api role knows it.
func setupProject(base, project string, flags int) (string, error) {
	var p struct {
		Environments map[string]struct {
			ServerKey string `json:"server_key"`
		} `json:"environments"`
	}
	if err := call("POST", base+"/api/v1/projects", adminToken, map[string]any{"key": project, "name": project}, 201, &p); err != nil {
		return "", err
	}
	for i := 0; i < flags; i++ {
		if err := call("POST", base+"/api/v1/projects/"+project+"/flags", adminToken,
			map[string]any{"key": "flag-" + strconv.Itoa(i), "name": "Flag " + strconv.Itoa(i), "type": "boolean"}, 201, nil); err != nil {
			return "", err
		}
	}
	key := p.Environments["production"].ServerKey
	for deadline := time.Now().Add(2 * time.Minute); ; { // minutes: at load averages of 30 it took over 30 s
		if call("GET", base+"/ofrep/v1/configuration", key, nil, 200, nil) == nil {
			return key, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the api role did not load the project's keys")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func call(method, url, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %d: %s", method, url, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// directOnlyRun measures the direct write alone, on a fresh database.
func directOnlyRun(ctx context.Context, c *common, gen generator, rows int64, size, workers int) error {
	dbURL, err := c.freshDatabase(ctx, "")
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
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	pcfg.MaxConns = int32(workers)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	for _, full := range []bool{true, false} {
		if _, err := pool.Exec(ctx, `TRUNCATE evaluation_events, goal_events, goal_attributions, experiment_exposures,
			experiment_user_goals, experiment_touched_users, telemetry_batches`); err != nil {
			return err
		}
		rate, err := directInsert(ctx, pool, gen, rows, size, workers, full, 1)
		if err != nil {
			return err
		}
		fmt.Printf("direct (full write %v): %d rows, %d writers, batches of %d: %.0f rows/s; %s\n", full, rows, workers, size, rate, machine())
	}
	return nil
}
