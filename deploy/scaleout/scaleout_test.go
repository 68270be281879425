// Package scaleout_test runs Vexil's roles as separate processes sharing one PostgreSQL database
// and one Redis prefix (2 api, 1 console, 2 projector, 1 experiment, 1 relay), drives evaluations,
// management writes and event ingest through them, kills one api, one projector, the relay and the
// experiment process with SIGKILL in turn and restarts each, and checks that nothing was lost.
// Run with -v to see the figures (deploy/README.md quotes them).
package scaleout_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/testkit"
)

const adminToken = "scaleout-admin-token-7f3c9a0e5b1d4c2a8e6f"

type proc struct {
	name, roles, addr, log string
	cmd                    *exec.Cmd
	done                   chan struct{}
}

type cluster struct {
	t    *testing.T
	bin  string
	env  []string
	dir  string
	http *http.Client
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (c *cluster) run(args ...string) []byte {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("vexil %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func (c *cluster) start(p *proc) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.dir, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	p.log = f.Name()
	p.cmd = exec.Command(c.bin, "serve")
	p.cmd.Env = append(slices.Clone(c.env), "VEXIL_ROLES="+p.roles, "VEXIL_HTTP_ADDR="+p.addr)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	dieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	testkit.WaitFor(c.t, 60*time.Second, p.name+" ready", func() bool {
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.log)
			c.t.Fatalf("%s exited:\n%s", p.name, tail(log))
		default:
		}
		r, err := c.http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
}

func (c *cluster) kill(p *proc) {
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown path runs
	<-p.done
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (c *cluster) do(method, url, bearer string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// pause paces a load loop (a back-off after a refused request); it waits for nothing to happen.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// rssOf reads each process's resident set size from /proc (Linux), for the sizing guide.
func rssOf(procs []*proc) string {
	var parts []string
	for _, p := range procs {
		rss, err := vmRSS(p.cmd.Process.Pid)
		if err != nil {
			return "unavailable: " + err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s %d kB", p.name, rss>>10))
	}
	return strings.Join(parts, ", ")
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// roles is the seven processes of the scale-out layout, started and seeded with the demo project.
type roles struct {
	*cluster
	dbURL     string
	procs     map[string]*proc
	order     []*proc
	serverKey string // the demo project's production server-side key
}

// startRoles builds the binary, migrates a fresh database, starts 2 api, 1 console, 2 projector, 1
// experiment and 1 relay process on loopback ports, and seeds the demo project through a separate
// process (as an operator would) while they run. The processes are killed when the test ends. env
// adds VEXIL_* settings to every process.
func startRoles(t *testing.T, env ...string) *roles {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vexil")
	build := exec.Command("go", "build", "-o", bin, "./services/vexil")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dbURL := pgtest.NewDatabase(t)
	prefix := redistest.NewPrefix(t)
	c := &cluster{t: t, bin: bin, dir: dir, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	c.env = append(os.Environ(), "VEXIL_DATABASE_URL="+dbURL, "VEXIL_REDIS_URL="+redistest.URL(), "VEXIL_STREAM_PREFIX="+prefix,
		"VEXIL_ADMIN_TOKEN="+adminToken, "VEXIL_LOG_LEVEL=warn", "VEXIL_MIGRATE=false",
		"VEXIL_ANALYSIS_INTERVAL=1s", "VEXIL_RECONCILE_INTERVAL=5s", "VEXIL_TELEMETRY_REDELIVER_AFTER=2s",
		"VEXIL_TELEMETRY_REFRESH_INTERVAL=5s")
	base := c.env
	c.env = append(slices.Clone(base), env...)
	c.run("migrate", "up")

	r := &roles{cluster: c, dbURL: dbURL, procs: map[string]*proc{}}
	r.order = []*proc{
		{name: "console", roles: "console"}, {name: "relay", roles: "relay"},
		{name: "projector-1", roles: "projector"}, {name: "projector-2", roles: "projector"},
		{name: "experiment", roles: "experiment"}, {name: "api-1", roles: "api"}, {name: "api-2", roles: "api"},
	}
	t.Cleanup(func() {
		for _, p := range r.order {
			if p.done == nil {
				continue // never started
			}
			_ = p.cmd.Process.Kill()
			<-p.done
			if t.Failed() {
				log, _ := os.ReadFile(p.log)
				t.Logf("%s's log:\n%s", p.name, tail(log))
			}
		}
	})
	for _, p := range r.order {
		p.addr = freeAddr(t)
		r.procs[p.name] = p
		c.start(p)
	}

	// The seed runs with the defaults: each of its steps reads what the one before wrote, which
	// a process started with VEXIL_CONSISTENCY_WAIT=0s (the RSS test's roles) does not wait for.
	procEnv := c.env
	c.env = base
	seedOut := c.run("seed", "demo")
	c.env = procEnv
	var seeded struct {
		Environments []struct {
			Key       string `json:"key"`
			ServerKey string `json:"server_key"`
		} `json:"environments"`
	}
	_ = json.Unmarshal(seedOut, &seeded)
	for _, e := range seeded.Environments {
		if e.Key == "production" {
			r.serverKey = e.ServerKey
		}
	}
	if r.serverKey == "" {
		t.Fatalf("no production server key in %s", seedOut)
	}
	return r
}

func TestRolesAsSeparateProcessesSurviveSIGKILL(t *testing.T) {
	r := startRoles(t)
	c, procs, order, serverKey, dbURL := r.cluster, r.procs, r.order, r.serverKey, r.dbURL
	console := "http://" + procs["console"].addr
	apis := []*proc{procs["api-1"], procs["api-2"]}

	evaluate := func(api *proc, flag string) (string, error) {
		st, b, err := c.do("POST", "http://"+api.addr+"/ofrep/v1/evaluate/flags/"+flag, serverKey,
			map[string]any{"context": map[string]any{"targetingKey": "user-1"}})
		if err != nil {
			return "", err
		}
		if st != 200 {
			return "", fmt.Errorf("%d %s", st, b)
		}
		var r struct{ Reason string }
		_ = json.Unmarshal(b, &r)
		return r.Reason, nil
	}
	for _, api := range apis {
		testkit.WaitFor(t, 30*time.Second, api.name+" serving the demo project", func() bool { _, err := evaluate(api, "new-checkout"); return err == nil })
	}

	db, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	count := func(q string) int {
		var n int
		if err := db.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	idle := rssOf(order) // seeded, caught up, nothing asked yet

	// Load: evaluations on both api processes, flag creations through the console, goal events.
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var down [2]atomic.Bool
	var evalOK, evalFailed, evalFailedWhileUp [2]atomic.Int64
	for i, api := range apis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := evaluate(api, "new-checkout"); err != nil {
					evalFailed[i].Add(1)
					if !down[i].Load() {
						evalFailedWhileUp[i].Add(1)
					}
					pause(ctx, 20*time.Millisecond) // a refused connection returns at once: don't spin
					continue
				}
				evalOK[i].Add(1)
			}
		}()
	}
	var writesAcked, writesRefused atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			st, _, err := c.do("POST", console+"/api/v1/projects/demo/flags", adminToken,
				map[string]any{"key": fmt.Sprintf("scaleout-%d", n), "name": "Scale-out", "type": "boolean"})
			if err == nil && st/100 == 2 {
				writesAcked.Add(1)
			} else {
				writesRefused.Add(1)
			}
		}
	}()
	var eventsSent, ingestRetries atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		// 400 events/s, paced: the figure is loss, not the ingest ceiling (deploy/telemetry measures that).
		pace := time.NewTicker(50 * time.Millisecond)
		defer pace.Stop()
		for n := 0; ctx.Err() == nil; n++ {
			select {
			case <-ctx.Done():
			case <-pace.C:
			}
			batch := make([]map[string]any, 20)
			for j := range batch {
				batch[j] = map[string]any{"kind": "goal", "goal_key": "purchase", "user_key": fmt.Sprintf("user-%d", n*20+j),
					"value": 1, "event_id": uuid4(), "occurred_at": time.Now().UTC().Format(time.RFC3339Nano)}
			}
			// Retried with the same ids until accepted (storage deduplicates), on the other api if one is down.
			for try := 0; ; try++ {
				api := apis[(n+try)%2]
				st, b, err := c.do("POST", "http://"+api.addr+"/sdk/v1/events", serverKey, map[string]any{"events": batch})
				if err == nil && st == 202 {
					var r struct{ Accepted, Rejected int }
					_ = json.Unmarshal(b, &r)
					if r.Accepted != len(batch) {
						t.Errorf("ingest accepted %d of %d: %s", r.Accepted, len(batch), b)
					}
					eventsSent.Add(int64(len(batch)))
					break
				}
				ingestRetries.Add(1)
				pause(ctx, 20*time.Millisecond)
				if ctx.Err() != nil && try > 50 {
					t.Errorf("a batch was never accepted: %v %d %s", err, st, b)
					return
				}
			}
		}
	}()

	progress := func(what string, cond func() bool) {
		defer func() {
			if t.Failed() {
				t.Logf("evaluations ok %d/%d failed %d/%d; writes acked %d refused %d; events %d, retries %d", evalOK[0].Load(), evalOK[1].Load(),
					evalFailed[0].Load(), evalFailed[1].Load(), writesAcked.Load(), writesRefused.Load(), eventsSent.Load(), ingestRetries.Load())
			}
		}()
		testkit.WaitFor(t, 60*time.Second, what, cond)
	}
	servedAtLeast := func(i int, more int64) func() bool {
		from := evalOK[i].Load()
		return func() bool { return evalOK[i].Load() >= from+more }
	}
	progress("load running", servedAtLeast(0, 200))

	// Kill -9 one api, one projector, the relay and the experiment process in turn; restart each.
	analysesBefore := count(`SELECT count(*) FROM experiment_analyses`)
	for _, name := range []string{"api-2", "projector-1", "relay", "experiment"} {
		p := procs[name]
		if name == "api-2" {
			down[1].Store(true)
		}
		c.kill(p)
		acked, served := writesAcked.Load(), servedAtLeast(0, 300)
		progress("work continuing without "+name, func() bool { return served() && writesAcked.Load() > acked })
		c.start(p)
		if name == "api-2" {
			testkit.WaitFor(t, 30*time.Second, "api-2 serving again", func() bool { _, err := evaluate(apis[1], "new-checkout"); return err == nil })
			down[1].Store(false)
		}
		progress("work continuing after "+name+" restarted", servedAtLeast(1, 100))
	}
	progress("analysis runs continuing after the experiment restart", func() bool {
		return count(`SELECT count(*) FROM experiment_analyses`) > analysesBefore+1
	})

	// Change propagation: toggles through the console, until both api processes answer the new state.
	var delays []time.Duration
	for i := range 20 {
		on := i%2 == 1
		sent := time.Now()
		st, b, err := c.do("POST", console+"/api/v1/projects/demo/flags/payments-enabled/environments/production/toggle", adminToken, map[string]any{"on": on})
		if err != nil || st/100 != 2 {
			t.Fatalf("toggle: %v %d %s", err, st, b)
		}
		testkit.WaitFor(t, 30*time.Second, "the toggle on both api processes", func() bool {
			for _, api := range apis {
				reason, err := evaluate(api, "payments-enabled")
				if err != nil || (reason == "DISABLED") == on {
					return false
				}
			}
			return true
		})
		delays = append(delays, time.Since(sent))
	}
	underLoad := rssOf(order)
	stopLoad()
	wg.Wait()

	// Everything acknowledged is there.
	// In the event store (streams created), and in the console's read model (what an operator sees).
	present := 0
	testkit.WaitFor(t, 60*time.Second, "acknowledged writes present", func() bool {
		present = count(`SELECT count(*) FROM events WHERE stream_id LIKE 'flag/demo/scaleout-%' AND version = 1`)
		return present >= int(writesAcked.Load())
	})
	listed := 0
	testkit.WaitFor(t, 60*time.Second, "acknowledged writes in the console's read model", func() bool {
		listed = 0
		for cursor := ""; ; {
			st, b, err := c.do("GET", console+"/api/v1/projects/demo/flags?q=scaleout&limit=500&cursor="+cursor, adminToken, nil)
			var page struct {
				Items []struct {
					Key string `json:"key"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			if err != nil || st != 200 || json.Unmarshal(b, &page) != nil {
				return false
			}
			for _, f := range page.Items {
				if strings.HasPrefix(f.Key, "scaleout-") {
					listed++
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		return listed >= int(writesAcked.Load())
	})
	stored := 0
	testkit.WaitFor(t, 90*time.Second, "sent events stored", func() bool {
		stored = count(`SELECT count(*) FROM goal_events`)
		return stored >= int(eventsSent.Load())
	})
	slices.Sort(delays)
	p99 := delays[(len(delays)*99+99)/100-1]
	t.Logf("evaluations: api-1 %d ok, %d failed (survivor; goal 0); api-2 %d ok, %d failed while down, %d failed while up",
		evalOK[0].Load(), evalFailed[0].Load(), evalOK[1].Load(), evalFailed[1].Load()-evalFailedWhileUp[1].Load(), evalFailedWhileUp[1].Load())
	t.Logf("management writes: %d acknowledged, %d in the event store, %d listed by the console, %d refused", writesAcked.Load(), present, listed, writesRefused.Load())
	t.Logf("events: %d sent (accepted), %d stored, %d ingest retries", eventsSent.Load(), stored, ingestRetries.Load())
	t.Logf("change to both api processes: p50 %v, p99 %v (n=%d)", delays[len(delays)/2], p99, len(delays))
	t.Logf("experiment analyses: %d before the kills, %d at the end", analysesBefore, count(`SELECT count(*) FROM experiment_analyses`))
	t.Logf("RSS idle (demo project loaded): %s", idle)
	t.Logf("RSS under load: %s", underLoad)
	t.Logf("RSS after the load stopped: %s", rssOf(order))
	if n := evalFailed[0].Load(); n != 0 {
		t.Errorf("%d failed evaluations at the surviving api", n)
	}
	if present != int(writesAcked.Load()) || listed != present {
		t.Errorf("writes: %d acknowledged, %d present, %d listed", writesAcked.Load(), present, listed)
	}
	if stored != int(eventsSent.Load()) {
		t.Errorf("events: %d sent, %d stored", eventsSent.Load(), stored)
	}
}
