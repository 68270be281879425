package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// runSigkill posts -events events over HTTP to the api role (in this process) while the telemetry
// projector runs as a child process (`vexil serve --roles projector`), kills the child with
// SIGKILL at given fractions of the run and starts it again, then checks that exactly every
// accepted event is stored once and that the derived tables agree with the raw ones.
func runSigkill(args []string) error {
	fs := flag.NewFlagSet("sigkill", flag.ExitOnError)
	var c common
	c.register(fs, "vexil_bench_sigkill")
	events := fs.Int64("events", 1_000_000, "events to post")
	size := fs.Int("batch", 100, "events per request")
	conns := fs.Int("connections", 8, "concurrent HTTP connections")
	users := fs.Int("users", 10000, "distinct users")
	flags := fs.Int("flags", 20, "distinct flags")
	goalEvery := fs.Int("goal-every", 10, "one goal event every N events")
	killAt := fs.String("kill-at", "0.3,0.65", "fractions of the stored events at which the projector is killed")
	vexil := fs.String("vexil", "", "the vexil binary (default: go build into a temporary directory)")
	_ = fs.Parse(args)
	ctx := context.Background()

	bin := *vexil
	if bin == "" {
		dir, err := os.MkdirTemp("", "vexil-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "vexil")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/vexil-flags/vexil/services/vexil").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	var kills []float64
	for _, f := range splitComma(*killAt) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || v >= 1 {
			return fmt.Errorf("kill-at: %q is not a fraction", f)
		}
		kills = append(kills, v)
	}

	dbURL, err := c.freshDatabase(ctx, "")
	if err != nil {
		return err
	}
	streamPrefix := prefix("sigkill")
	cfg, err := config.Parse("bench", []string{"--database-url", dbURL, "--redis-url", c.redisURL,
		"--stream-prefix", streamPrefix, "--http-addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--roles", "api,console,relay", "--consistency-wait", "0s"}, func(string) (string, bool) { return "", false })
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
	child := func() (*exec.Cmd, chan struct{}, error) {
		cmd := exec.Command(bin, "serve", "--roles", "projector", "--database-url", dbURL, "--redis-url", c.redisURL,
			"--stream-prefix", streamPrefix, "--http-addr", "127.0.0.1:0", "--migrate=false", "--admin-token", adminToken,
			"--telemetry-redeliver-after", "5s", "--telemetry-refresh-interval", "5s", "--log-level", "error")
		if c.verbose {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		return cmd, done, nil
	}
	proj, projDone, err := child()
	if err != nil {
		return err
	}
	defer func() { _ = proj.Process.Signal(syscall.SIGKILL); <-projDone }()
	base := "http://" + p.Addr
	key, err := setupProject(base, "bench", *flags)
	if err != nil {
		return err
	}
	gen := generator{flags: *flags, users: *users, goalEvery: *goalEvery, runID: uint32(time.Now().Unix())}
	fmt.Printf("sigkill: %d events in batches of %d over %d connections, projector killed at %v of the run; %s\n",
		*events, *size, *conns, kills, machine())

	stored := func() int64 {
		var n int64
		_ = p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM evaluation_events) + (SELECT count(*) FROM goal_events)`).Scan(&n)
		return n
	}
	var next, accepted, retries atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{}
			var buf []byte
			for {
				k0 := next.Add(int64(*size)) - int64(*size)
				if k0 >= *events {
					return
				}
				n := int(min(int64(*size), *events-k0))
				buf = gen.appendBody(buf[:0], k0, n, time.Now())
				for {
					req, _ := http.NewRequest("POST", base+"/sdk/v1/events", bytes.NewReader(buf))
					req.Header.Set("Authorization", "Bearer "+key)
					req.Header.Set("Content-Type", "application/json")
					res, err := client.Do(req)
					status := 0
					if err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						status = res.StatusCode
					}
					if status == http.StatusAccepted {
						accepted.Add(int64(n))
						break
					}
					retries.Add(1) // 429 while the projector is down or behind: retry the same body
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	for _, f := range kills {
		target := int64(f * float64(*events))
		for stored() < target {
			time.Sleep(20 * time.Millisecond)
		}
		_ = proj.Process.Signal(syscall.SIGKILL)
		<-projDone
		fmt.Printf("SIGKILL of the projector (pid %d) at %d rows stored, %v into the run\n", proj.Process.Pid, stored(), time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Second)
		if proj, projDone, err = child(); err != nil {
			return err
		}
	}
	wg.Wait()
	want := accepted.Load()
	fmt.Printf("posted: %d events accepted in %v (%d retried requests while the projector was down or behind)\n",
		want, time.Since(start).Round(time.Millisecond), retries.Load())
	for deadline := time.Now().Add(10 * time.Minute); stored() < want && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // redeliveries still in flight land now, and must add nothing
	var rows, distinct, batches, attributions, implied, conversions int64
	err = p.Pool.QueryRow(ctx, `SELECT
		  (SELECT count(*) FROM evaluation_events) + (SELECT count(*) FROM goal_events),
		  (SELECT count(DISTINCT event_id) FROM evaluation_events) + (SELECT count(DISTINCT event_id) FROM goal_events),
		  (SELECT count(*) FROM telemetry_batches)`).Scan(&rows, &distinct, &batches)
	if err != nil {
		return err
	}
	// Goals stored at the same moment as their user's first exposure are attributed by the
	// maintenance pass (every 5 s here).
	for deadline := time.Now().Add(30 * time.Second); ; {
		err = p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM goal_attributions),
			  (SELECT count(*) FROM goal_events g JOIN experiment_exposures x ON x.project = g.project
			     AND x.environment = g.environment AND x.user_key = g.user_key AND x.first_exposed_at <= g.occurred_at),
			  (SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals)`).Scan(&attributions, &implied, &conversions)
		if err != nil || (attributions == implied && conversions == attributions) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return err
	}
	fmt.Printf("result: %d events accepted, %d rows stored, %d distinct event ids: %d lost, %d doubled; %d batch log rows for %d batches\n",
		want, rows, distinct, want-distinct, rows-distinct, batches, (*events+int64(*size)-1)/int64(*size))
	fmt.Printf("derived: %d goal attributions (the raw tables imply %d), per-user goal sums count %d conversions\n",
		attributions, implied, conversions)
	if rows != want || distinct != want || attributions != implied || conversions != attributions {
		return fmt.Errorf("FAILED: stored rows or derived tables differ from what was accepted")
	}
	fmt.Println("OK: every accepted event stored exactly once")
	return nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
