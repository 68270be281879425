package scaleout_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/testkit"
)

// rssFlagsEnv overrides how many flags TestRSSPerRoleWith1000Flags writes (default 1,000).
const rssFlagsEnv = "VEXIL_SCALEOUT_RSS_FLAGS"

// memory is what one process holds: its resident set (from /proc) and its Go heap (from its
// /metrics), so garbage the runtime has not returned to the system is told apart from live data.
type memory struct {
	rss       int64 // VmRSS, bytes
	heapInuse int64 // go_memstats_heap_inuse_bytes: spans with live objects, or garbage not yet swept
	heapHeld  int64 // heap_idle - heap_released: free spans the runtime keeps without returning them
	loads     int64 // vexil_sdk_ruleset_loads_total (api role; 0 elsewhere)
}

func mb(b int64) string { return strconv.FormatInt((b+1<<19)>>20, 10) }

func (m memory) String() string {
	return fmt.Sprintf("RSS %s MB (heap in use %s, held free %s)", mb(m.rss), mb(m.heapInuse), mb(m.heapHeld))
}

// vmRSS reads a process's resident set size from /proc/<pid>/status (Linux).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// scrape reads the named samples (no labels) of a process's /metrics.
func (c *cluster) scrape(p *proc, names ...string) (map[string]float64, error) {
	resp, err := c.http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %d", p.name, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		for _, want := range names {
			if name == want {
				if out[name], err = strconv.ParseFloat(value, 64); err != nil {
					return nil, fmt.Errorf("%s %s: %w", p.name, name, err)
				}
			}
		}
	}
	return out, sc.Err()
}

func (c *cluster) memoryOf(p *proc) memory {
	c.t.Helper()
	rss, err := vmRSS(p.cmd.Process.Pid)
	if err != nil {
		c.t.Fatalf("%s: %v", p.name, err)
	}
	m, err := c.scrape(p, "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"vexil_sdk_ruleset_loads_total")
	if err != nil {
		c.t.Fatal(err)
	}
	return memory{rss: rss, heapInuse: int64(m["go_memstats_heap_inuse_bytes"]),
		heapHeld: int64(m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]),
		loads:    int64(m["vexil_sdk_ruleset_loads_total"])}
}

func (r *roles) memories() string {
	var parts []string
	for _, p := range r.order {
		parts = append(parts, p.name+" "+r.memoryOf(p).String())
	}
	return strings.Join(parts, "; ")
}

// rssFlag is fixture flag i: a string flag with three variations and, in production, targeting
// with individual targets, two rules (attribute clauses, one of them with the demo project's
// segment) and a percentage split as the default, so the api role compiles what a real ruleset holds.
func rssFlag(i int) (create, targeting map[string]any) {
	key := fmt.Sprintf("rss-%04d", i)
	create = map[string]any{"key": key, "name": fmt.Sprintf("RSS fixture %d", i), "type": "string",
		"tags": []string{"rss", fmt.Sprintf("team-%d", i%10)}, "client_side": i%10 == 0,
		"variations": []map[string]any{{"key": "control", "value": "control"}, {"key": "blue", "value": "blue-" + key},
			{"key": "green", "value": "green-" + key}},
		"defaults": map[string]any{"on_variation": "control", "off_variation": "control"}}
	targeting = map[string]any{"on": true, "off_variation": "control",
		"targets": []map[string]any{{"variation": "blue", "values": []string{fmt.Sprintf("user-%d", i), fmt.Sprintf("user-%d", i+1)}}},
		"rules": []map[string]any{
			{"description": "staff in beta", "serve": map[string]any{"variation": "green"}, "clauses": []map[string]any{
				{"attribute": "email", "op": "ends_with", "values": []string{"@example.com"}},
				{"op": "in_segment", "values": []string{"beta-testers"}}}},
			{"description": "pro plans in some countries", "serve": map[string]any{"variation": "blue"}, "clauses": []map[string]any{
				{"attribute": "plan", "op": "in", "values": []string{"pro", "enterprise"}},
				{"attribute": "country", "op": "in", "values": []string{"US", "CA", "DE", "FR", "GB"}},
				{"attribute": "version", "op": "semver_gt", "values": []string{fmt.Sprintf("1.%d.0", i%20)}}}},
		},
		"default": map[string]any{"split": map[string]any{"variations": []map[string]any{
			{"variation": "control", "weight": 50000}, {"variation": "blue", "weight": 25000}, {"variation": "green", "weight": 25000}}}}}
	return create, targeting
}

// TestRSSPerRoleWith1000Flags measures each role's memory with 1,000 flags (deploy/README.md's
// sizing section quotes it): it writes the flags through the console (eight writers: a flag's
// creation, then its production targeting), waits until every api process serves them all and
// has stopped reloading rulesets, reads each process's RSS and Go heap (idle), then drives OFREP
// single and bulk evaluations through both api processes and reads them again (under load).
// VEXIL_SCALEOUT_RSS_FLAGS sets another number of flags.
func TestRSSPerRoleWith1000Flags(t *testing.T) {
	flags := 1000
	if v := os.Getenv(rssFlagsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of flags", rssFlagsEnv, v)
		}
		flags = n
	}
	// Writes answer once committed, without waiting for the read models (memory is measured here,
	// not write latency): the fixture takes a fraction of the time on a busy machine.
	r := startRoles(t, "VEXIL_CONSISTENCY_WAIT=0s")
	console := "http://" + r.procs["console"].addr
	apis := []*proc{r.procs["api-1"], r.procs["api-2"]}
	loadsBefore := [2]int64{r.memoryOf(apis[0]).loads, r.memoryOf(apis[1]).loads}
	t.Logf("RSS idle, demo project only: %s", r.memories())

	// The fixture, through the management API as a user would write it.
	began := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Pointer[string]
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				create, targeting := rssFlag(i)
				key := create["key"].(string)
				// Retried on a timeout or a 503 (a busy shared machine): a creation that committed
				// before its answer was lost answers 409 the second time; targeting is replaced whole.
				write := func(method, path string, body any, ok ...int) bool {
					var msg string
					for try := range 5 {
						st, b, err := r.do(method, console+path, adminToken, body)
						if err == nil && (slices.Contains(ok, st) || try > 0 && st == http.StatusConflict && method == "POST") {
							return true
						}
						if msg = fmt.Sprintf("%s %s: %v %d %s", method, path, err, st, b); err == nil && st != http.StatusServiceUnavailable {
							break
						}
					}
					failed.CompareAndSwap(nil, &msg)
					return false
				}
				if write("POST", "/api/v1/projects/demo/flags", create, http.StatusCreated) {
					write("PUT", "/api/v1/projects/demo/flags/"+key+"/environments/production", targeting, http.StatusOK)
				}
			}
		}()
	}
	for i := range flags {
		if failed.Load() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		t.Fatal(*msg)
	}
	written := time.Since(began)

	// Settled: both api processes serve every flag, and their reload count has stopped moving for
	// longer than the reconciliation interval (5 s here), so nothing is being rebuilt.
	bulkCount := func(api *proc) (int, error) {
		st, b, err := r.do("POST", "http://"+api.addr+"/ofrep/v1/evaluate/flags", r.serverKey,
			map[string]any{"context": map[string]any{"targetingKey": "user-1"}})
		if err != nil || st != http.StatusOK {
			return 0, fmt.Errorf("bulk: %v %d %s", err, st, b)
		}
		var bulk struct {
			Flags []struct{ Key string } `json:"flags"`
		}
		if err := json.Unmarshal(b, &bulk); err != nil {
			return 0, err
		}
		n := 0
		for _, f := range bulk.Flags {
			if strings.HasPrefix(f.Key, "rss-") {
				n++
			}
		}
		return n, nil
	}
	for _, api := range apis {
		testkit.WaitFor(t, 300*time.Second, api.name+" serving every fixture flag", func() bool {
			n, err := bulkCount(api)
			return err == nil && n == flags
		})
	}
	var loads [2]int64
	stableSince := time.Now()
	testkit.WaitFor(t, 120*time.Second, "no ruleset reload for 6 s on either api process", func() bool {
		now := [2]int64{r.memoryOf(apis[0]).loads, r.memoryOf(apis[1]).loads}
		if now != loads {
			loads, stableSince = now, time.Now()
		}
		return time.Since(stableSince) > 6*time.Second
	})
	settled := time.Since(began)
	idle := r.memories()

	// OFREP load on both api processes: single evaluations of random fixture flags (three
	// connections each) and bulk evaluations of every flag (one connection each).
	ctx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	var single, bulk, loadErrs atomic.Int64
	var lw sync.WaitGroup
	for _, api := range apis {
		for w := range 4 {
			lw.Add(1)
			go func() {
				defer lw.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for ctx.Err() == nil {
					evalCtx := map[string]any{"targetingKey": fmt.Sprintf("user-%d", rng.IntN(100000)), "plan": "pro",
						"country": "DE", "version": "1.7.3", "email": "someone@example.org"}
					url, counter := "http://"+api.addr+"/ofrep/v1/evaluate/flags", &bulk
					if w > 0 {
						url, counter = fmt.Sprintf("%s/rss-%04d", url, rng.IntN(flags)), &single
					}
					st, _, err := r.do("POST", url, r.serverKey, map[string]any{"context": evalCtx})
					if err != nil || st != http.StatusOK {
						if ctx.Err() == nil {
							loadErrs.Add(1)
						}
						continue
					}
					counter.Add(1)
				}
			}()
		}
	}
	// Sampled each second while the load runs (the load's duration is the measurement window, not
	// a wait for something to happen); the highest RSS of each process is reported.
	peak := make([]memory, len(r.order))
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-sample.C:
			for i, p := range r.order {
				if m := r.memoryOf(p); m.rss > peak[i].rss {
					peak[i] = m
				}
			}
		}
	}
	var underLoad []string
	for i, p := range r.order {
		underLoad = append(underLoad, p.name+" "+peak[i].String())
	}
	lw.Wait()

	t.Logf("fixture: %d flags (creation + production targeting: %d writes) through the console in %v, %v until both api processes settled",
		flags, 2*flags, written.Round(time.Millisecond), settled.Round(time.Millisecond))
	t.Logf("ruleset loads per api process while the fixture was written: api-1 %d, api-2 %d", loads[0]-loadsBefore[0], loads[1]-loadsBefore[1])
	t.Logf("RSS idle, %d flags: %s", flags, idle)
	t.Logf("RSS under OFREP load, %d flags (15 s, 2 api: %d single, %d bulk evaluations, %d errors), highest sample: %s",
		flags, single.Load(), bulk.Load(), loadErrs.Load(), strings.Join(underLoad, "; "))
	if n := loadErrs.Load(); n != 0 {
		t.Errorf("%d failed evaluations under load", n)
	}
}
