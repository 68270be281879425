package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// The write path (issue 19): a management write answers only after the read models it feeds
// (catalog, rulesets, audit) have applied it, so its latency is the whole trip: event store and
// outbox in one transaction, the relay to the domain stream, the projector, and the writer's wait
// for the projector's checkpoint. The scenario runs every role of the real program in this process
// on a fresh database and stream prefix and measures, from the client:
//   - sequential toggles of one flag (p50, p99);
//   - N flags created with targeting (a create and a targeting PUT each) by C concurrent clients.

const writeAdminToken = "load-admin-token-0123456789abcdef"

func runWrite(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	toggles := fs.Int("toggles", 200, "sequential toggles of one flag to time")
	nFlags := fs.Int("flags", 1000, "flags created with targeting by the concurrent clients")
	clients := fs.Int("clients", 8, "concurrent clients creating the flags")
	db := fs.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (loopback only); a fresh database is created on it and dropped")
	redisURL := fs.String("redis", "redis://127.0.0.1:6379/0", "Redis (loopback); the streams get a fresh prefix")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole process (every role) while the flags are created")
	_ = fs.Parse(args)

	d, err := newDatabase(ctx, *db, log)
	if err != nil {
		return err
	}
	defer d.drop()
	var b [4]byte
	_, _ = rand.Read(b[:])
	cfg, err := config.Parse("load", []string{"--database-url", d.url, "--redis-url", *redisURL,
		"--stream-prefix", "vexil-load-" + hex.EncodeToString(b[:]), "--http-addr", "127.0.0.1:0", "--admin-token", writeAdminToken},
		func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	p, err := platform.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	if err := p.Start(ctx); err != nil {
		return err
	}
	c := &apiClient{base: "http://" + p.Addr, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients + 4}}}
	if err := c.send(ctx, 201, "POST", "/api/v1/projects", map[string]any{"key": "load", "name": "Load"}); err != nil {
		return err
	}
	if err := c.send(ctx, 201, "POST", "/api/v1/projects/load/flags", map[string]any{"key": "switch", "name": "Switch", "type": "boolean"}); err != nil {
		return err
	}
	fmt.Printf("load average before: %s\n", loadAverage())

	// Sequential toggles: each answer includes read-your-writes.
	var th hist
	for i := 0; i < *toggles; i++ {
		t0 := time.Now()
		if err := c.send(ctx, 200, "POST", "/api/v1/projects/load/flags/switch/environments/production/toggle", map[string]any{"on": i%2 == 0}); err != nil {
			return fmt.Errorf("toggle %d: %w", i, err)
		}
		th.record(time.Since(t0))
	}
	fmt.Printf("toggle (sequential, %d): p50 %v  p99 %v  max %v   goal p50 < 15ms, p99 < 50ms (quiet machine)\n",
		*toggles, th.quantile(0.5).Round(10*time.Microsecond), th.quantile(0.99).Round(10*time.Microsecond), time.Duration(th.max).Round(time.Millisecond))

	// N flags with targeting by C clients.
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var next atomic.Int64
	hs := make([]hist, *clients)
	errs := make(chan error, *clients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(h *hist) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *nFlags {
					return
				}
				key := fmt.Sprintf("flag-%04d", i)
				s := time.Now()
				if err := c.send(ctx, 201, "POST", "/api/v1/projects/load/flags", map[string]any{"key": key, "name": key, "type": "boolean"}); err != nil {
					errs <- fmt.Errorf("create %s: %w", key, err)
					return
				}
				h.record(time.Since(s))
				s = time.Now()
				if err := c.send(ctx, 200, "PUT", "/api/v1/projects/load/flags/"+key+"/environments/production", targetingOf(i)); err != nil {
					errs <- fmt.Errorf("targeting %s: %w", key, err)
					return
				}
				h.record(time.Since(s))
			}
		}(&hs[w])
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var all hist
	for i := range hs {
		all.merge(&hs[i])
	}
	fmt.Printf("%d flags with targeting by %d clients (%d writes): %v  (%.0f writes/s; per write p50 %v p99 %v)   goal < 20s\n",
		*nFlags, *clients, all.total, elapsed.Round(10*time.Millisecond), float64(all.total)/elapsed.Seconds(),
		all.quantile(0.5).Round(10*time.Microsecond), all.quantile(0.99).Round(10*time.Microsecond))
	fmt.Printf("load average after: %s\n", loadAverage())
	return nil
}

// targetingOf is a flag's production targeting: one rule with two clauses, a 10/90 default split.
func targetingOf(i int) map[string]any {
	return map[string]any{
		"on": true, "off_variation": "false",
		"targets": []any{map[string]any{"variation": "true", "values": []string{fmt.Sprintf("user-%d", i)}}},
		"rules": []any{map[string]any{"clauses": []any{
			map[string]any{"attribute": "country", "op": "in", "values": []string{"FR", "DE"}},
			map[string]any{"attribute": "plan", "op": "in", "values": []string{"pro"}}},
			"serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"split": map[string]any{"variations": []any{
			map[string]any{"variation": "true", "weight": 10000}, map[string]any{"variation": "false", "weight": 90000}}}},
	}
}

type apiClient struct {
	base string
	http *http.Client
}

func (c *apiClient) send(ctx context.Context, want int, method, path string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+writeAdminToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vexil-Reason", "load test")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, got)
	}
	return nil
}
