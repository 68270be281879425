package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// endpoints is what the servers expose (printed by -serve-only, read by -server-proc and wrk.sh).
type endpoints struct {
	Bare          string   `json:"bare"`    // host:port of the bare echo handler (POST/GET /bare)
	BareMW        string   `json:"bare_mw"` // host:port of the bare handler behind the platform middleware
	SDK           string   `json:"sdk"`     // host:port of the SDK API
	ServerKey     string   `json:"server_key"`
	ClientKey     string   `json:"client_key"`
	BulkServerKey string   `json:"bulk_server_key"` // server key of the project of 100 flags
	Flags         []string `json:"flags"`
	ClientFlags   int      `json:"client_flags"`
	SmallFlags    int      `json:"small_flags"`
}

type httpOptions struct {
	duration, warmup time.Duration
	conns            int
	flags, bulkFlags int
	contexts         int
	targets          []string
	client           string
	rate             float64
	rounds           int
	goalLoad         bool
	serveOnly        bool
	pprofAddr        string
	serveFor         time.Duration
	envFile          string
	machine          bool
	serverProc       bool
	db               string
}

var allTargets = []string{"bare", "bare-mw", "single", "bulk", "bulk-server", "bulk-1000"}

func runHTTP(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	o := httpOptions{}
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up per target, not measured")
	fs.IntVar(&o.conns, "conns", 64, "keep-alive connections")
	fs.IntVar(&o.flags, "flags", 1000, "flags in the environment of single and client-side bulk evaluation (a tenth are client_side)")
	fs.IntVar(&o.bulkFlags, "bulk-flags", 100, "flags of the project the bulk-server target evaluates")
	fs.IntVar(&o.contexts, "contexts", 4096, "distinct pre-built requests per target (random flag and context)")
	targets := fs.String("targets", "bare,single,bulk,bulk-server", "comma-separated, in order: "+strings.Join(allTargets, ", "))
	fs.StringVar(&o.client, "client", "raw", "load generator client: raw (hand-written HTTP/1.1 over net.Conn) or nethttp")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: requests/s per target (latency from the intended send time); 0 = closed loop")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat the sequence of targets this many times")
	fs.BoolVar(&o.goalLoad, "goal-load", true, "after the closed-loop runs, run single evaluation open loop at 60% of the bare handler's req/s and report its latency (the goal's \"p99 at that load\")")
	fs.BoolVar(&o.serveOnly, "serve-only", false, "start the servers, print their endpoints and wait (for wrk)")
	fs.StringVar(&o.pprofAddr, "pprof", "", "with -serve-only: serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060) to profile the servers under load")
	fs.DurationVar(&o.serveFor, "serve-for", 30*time.Minute, "with -serve-only: exit after this long")
	fs.StringVar(&o.envFile, "env-file", "", "with -serve-only: also write the endpoints as shell variables to this file")
	fs.BoolVar(&o.machine, "machine", false, "with -serve-only: print the endpoints as one JSON line")
	fs.BoolVar(&o.serverProc, "server-proc", false, "run the servers in a child process (separate heap, GC and CPU accounting)")
	fs.StringVar(&o.db, "db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (loopback only); a fresh database is created on it and dropped")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	o.targets = strings.Split(*targets, ",")
	for _, t := range o.targets {
		if !slices.Contains(allTargets, t) {
			return fmt.Errorf("unknown target %q (have %s)", t, strings.Join(allTargets, ", "))
		}
	}
	if o.client != "raw" && o.client != "nethttp" {
		return fmt.Errorf("unknown client %q", o.client)
	}

	if o.serverProc && !o.serveOnly {
		return runHTTPAgainstChild(ctx, o, args)
	}
	ep, stop, err := startHTTPServers(ctx, o, log)
	if err != nil {
		return err
	}
	defer stop()
	if o.serveOnly {
		return serveOnly(ctx, o, ep)
	}
	return measureHTTP(ctx, o, ep, nil)
}

// startHTTPServers creates the database, seeds it, builds the read models and starts the bare
// handlers and the SDK API. stop shuts everything down and drops the database.
func startHTTPServers(ctx context.Context, o httpOptions, log *slog.Logger) (*endpoints, func(), error) {
	fmt.Fprintf(os.Stderr, "creating the database and %d + %d flags ...\n", o.flags, o.bulkFlags)
	t0 := time.Now()
	db, err := newDatabase(ctx, o.db, log)
	if err != nil {
		return nil, nil, err
	}
	var cleanups []func()
	stop := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		db.drop()
	}
	fail := func(err error) (*endpoints, func(), error) {
		stop()
		return nil, nil, err
	}
	big, err := db.seedProject(ctx, "load", o.flags)
	if err != nil {
		return fail(err)
	}
	small, err := db.seedProject(ctx, "load100", o.bulkFlags)
	if err != nil {
		return fail(err)
	}
	t1 := time.Now()
	if err := db.project(ctx); err != nil {
		return fail(err)
	}
	t2 := time.Now()
	var ruleFlags int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM rm_ruleset_flags`).Scan(&ruleFlags); err != nil {
		return fail(err)
	}
	if ruleFlags != o.flags+o.bulkFlags {
		return fail(fmt.Errorf("the rulesets read model holds %d flags, want %d", ruleFlags, o.flags+o.bulkFlags))
	}
	fmt.Fprintf(os.Stderr, "database %s: events appended in %v, read models built in %v\n", db.name,
		t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond))

	api, err := newSDKAPI(ctx, db, log, 15*time.Second)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, api.stop)
	sdkSrv, err := serve(api.echo)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, sdkSrv.close)
	bareSrv, err := serve(bareEcho())
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, bareSrv.close)
	// The bare handler behind the platform's error handler and middleware: tells how much of the
	// gap is the middleware.
	mw := bareEcho()
	mw.HTTPErrorHandler = httpapi.ErrorHandler(log)
	mw.Use(httpapi.Middleware(log, httpapi.NewMetrics(prometheus.NewRegistry()), defaultTimeouts(), nil)...)
	mwSrv, err := serve(mw)
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, mwSrv.close)
	ep := &endpoints{Bare: bareSrv.addr, BareMW: mwSrv.addr, SDK: sdkSrv.addr, ServerKey: big.serverKey,
		ClientKey: big.clientKey, BulkServerKey: small.serverKey, Flags: big.flags,
		ClientFlags: len(big.clientFlags), SmallFlags: len(small.flags)}
	return ep, stop, nil
}

func serveOnly(ctx context.Context, o httpOptions, ep *endpoints) error {
	if o.envFile != "" {
		keysFile := o.envFile + ".flags"
		if err := os.WriteFile(keysFile, []byte(strings.Join(ep.Flags, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		env := fmt.Sprintf("BARE_ADDR=%s\nBARE_MW_ADDR=%s\nSDK_ADDR=%s\nSERVER_KEY=%s\nCLIENT_KEY=%s\nBULK_SERVER_KEY=%s\nFLAGS_FILE=%s\n",
			ep.Bare, ep.BareMW, ep.SDK, ep.ServerKey, ep.ClientKey, ep.BulkServerKey, keysFile)
		tmp := o.envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, o.envFile); err != nil {
			return err
		}
	}
	if o.pprofAddr != "" {
		if !strings.HasPrefix(o.pprofAddr, "127.0.0.1:") {
			return fmt.Errorf("-pprof must be a 127.0.0.1 address, not %q", o.pprofAddr)
		}
		// http.DefaultServeMux holds net/http/pprof's handlers (imported in sys.go).
		srv := &http.Server{Addr: o.pprofAddr, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer srv.Close()
	}
	if o.machine {
		b, _ := json.Marshal(ep)
		fmt.Println(string(b))
	} else {
		fmt.Printf("bare echo handler:          POST http://%s/bare\n", ep.Bare)
		fmt.Printf("bare handler + middleware:  POST http://%s/bare\n", ep.BareMW)
		fmt.Printf("SDK API:                    http://%s  (OFREP: /ofrep/v1/evaluate/flags[/{key}])\n", ep.SDK)
		fmt.Printf("server key (%d flags):    %s\nclient key (%d client-side): %s\nserver key (%d flags):     %s\n",
			len(ep.Flags), ep.ServerKey, ep.ClientFlags, ep.ClientKey, ep.SmallFlags, ep.BulkServerKey)
		fmt.Printf("serving until interrupted, at most %v\n", o.serveFor)
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.serveFor):
	}
	return nil
}

// runHTTPAgainstChild starts this program with -serve-only in a child process and loads it from
// here, so the client's and the server's heaps, GCs and CPU time are apart.
func runHTTPAgainstChild(ctx context.Context, o httpOptions, args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	childArgs := []string{"http", "-serve-only", "-machine"}
	for _, a := range args {
		if !strings.Contains(a, "server-proc") {
			childArgs = append(childArgs, a)
		}
	}
	cmd := exec.Command(exe, childArgs...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReaderSize(out, 1<<20).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("the server process ended before it was ready: %w", err)
	}
	var ep endpoints
	if err := json.Unmarshal(line, &ep); err != nil {
		return fmt.Errorf("server process: %w", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }() // drain the child's output; nothing to do if it fails
	return measureHTTP(ctx, o, &ep, cmd.Process)
}

// buildTargets pre-builds the requests of each target.
func buildTargets(o httpOptions, ep *endpoints) map[string]*target {
	r := rand.New(rand.NewPCG(42, 4242))
	bodies := make([][]byte, o.contexts)
	for i := range bodies {
		bodies[i] = fixture.RequestBody(fixture.Context(r))
	}
	auth := func(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }
	out := map[string]*target{}
	for _, name := range o.targets {
		switch name {
		case "bare":
			out[name] = newTarget(name, ep.Bare, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/bare", auth(ep.ServerKey), bodies[i]
			})
		case "bare-mw":
			out[name] = newTarget(name, ep.BareMW, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/bare", auth(ep.ServerKey), bodies[i]
			})
		case "single":
			out[name] = newTarget(name, ep.SDK, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/ofrep/v1/evaluate/flags/" + ep.Flags[r.IntN(len(ep.Flags))], auth(ep.ServerKey), bodies[i]
			})
		case "bulk":
			out[name] = newTarget(name, ep.SDK, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/ofrep/v1/evaluate/flags", auth(ep.ClientKey), bodies[i]
			})
		case "bulk-server":
			out[name] = newTarget(name, ep.SDK, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/ofrep/v1/evaluate/flags", auth(ep.BulkServerKey), bodies[i]
			})
		case "bulk-1000":
			// Issue 19's bulk goal: every one of the 1,000 flags, server key (counters included).
			out[name] = newTarget(name, ep.SDK, o.contexts, func(i int) (string, http.Header, []byte) {
				return "/ofrep/v1/evaluate/flags", auth(ep.ServerKey), bodies[i]
			})
		}
	}
	return out
}

// checkTargets sends a few requests of each target with net/http and checks the answers.
func checkTargets(ts map[string]*target, ep *endpoints) error {
	c := &http.Client{Timeout: 10 * time.Second}
	for name, t := range ts {
		for i := 0; i < 20; i++ {
			p := &t.reqs[i]
			req, _ := http.NewRequest(p.method, p.url, bytes.NewReader(p.body))
			req.Header = p.header
			resp, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: status %d: %s", name, resp.StatusCode, body)
			}
			var ans struct {
				Key    string           `json:"key"`
				Reason string           `json:"reason"`
				Flags  []map[string]any `json:"flags"`
			}
			if err := json.Unmarshal(body, &ans); err != nil {
				return fmt.Errorf("%s: %v: %s", name, err, body)
			}
			want := -1
			switch name {
			case "single":
				if ans.Key == "" || ans.Reason == "" {
					return fmt.Errorf("single: not an evaluation: %s", body)
				}
			case "bulk":
				want = ep.ClientFlags
			case "bulk-server":
				want = ep.SmallFlags
			case "bulk-1000":
				want = len(ep.Flags)
			}
			if want >= 0 {
				if len(ans.Flags) != want {
					return fmt.Errorf("%s: %d flags in the answer, want %d", name, len(ans.Flags), want)
				}
				for _, f := range ans.Flags {
					if _, bad := f["errorCode"]; bad {
						return fmt.Errorf("%s: failed evaluation %v", name, f)
					}
				}
			}
			if i == 0 {
				s := strings.TrimSpace(string(body))
				if len(s) > 160 {
					s = s[:160] + fmt.Sprintf("... (%d bytes)", len(body))
				}
				fmt.Printf("  %-12s %s\n", name, s)
			}
		}
	}
	return nil
}

func measureHTTP(ctx context.Context, o httpOptions, ep *endpoints, child *os.Process) error {
	ts := buildTargets(o, ep)
	fmt.Println("sample answers:")
	if err := checkTargets(ts, ep); err != nil {
		return err
	}
	mode := "closed loop"
	if o.rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f req/s", o.rate)
	}
	where := "client and servers in one process"
	if child != nil {
		where = fmt.Sprintf("servers in child process %d", child.Pid)
	}
	fmt.Printf("\n%d keep-alive connections, %s, client %s, %v warm-up + %v per target, %s, GOMAXPROCS %d, %d CPUs\n",
		o.conns, mode, o.client, o.warmup, o.duration, where, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("load average before: %s\n\n", loadAverage())
	// measure loads one target; serverCPU is the child process's CPU seconds during the run, -1
	// when the servers run in this process.
	measure := func(name string, rate float64) (res *loadResult, serverCPU float64, err error) {
		var cpu0 float64
		if child != nil {
			cpu0 = pidCPU(child.Pid)
		}
		res, err = runLoad(ts[name], o.client, o.conns, o.warmup, o.duration, rate)
		serverCPU = -1
		if child != nil {
			serverCPU = pidCPU(child.Pid) - cpu0
		}
		return res, serverCPU, err
	}
	all := map[string][]*loadResult{}
	for round := 1; round <= o.rounds; round++ {
		if o.rounds > 1 {
			fmt.Printf("round %d\n", round)
		}
		printHeader(child != nil)
		var bare float64
		for _, name := range o.targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res, serverCPU, err := measure(name, o.rate)
			if err != nil {
				return err
			}
			if name == "bare" {
				bare = res.rps()
			}
			all[name] = append(all[name], res)
			printRow(res, bare, serverCPU)
		}
		fmt.Println()
	}
	// "p99 under 10 ms at that load": single evaluation open loop at 60% of bare's median
	// req/s, once per round (the goal is judged on the median round), each right after the bare
	// handler at the same rate: the bare run shows how much of the tail is this machine and the
	// load generator rather than evaluation.
	var atGoal []*loadResult
	if o.goalLoad && o.rate == 0 && len(all["bare"]) > 0 && ts["single"] != nil {
		rate := 0.60 * median(all["bare"]).rps()
		fmt.Printf("open loop at 60%% of the bare handler's median req/s (%.0f req/s), latency from the intended send time:\n", rate)
		printHeader(child != nil)
		for round := 1; round <= o.rounds; round++ {
			for _, name := range []string{"bare", "single"} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, serverCPU, err := measure(name, rate)
				if err != nil {
					return err
				}
				res.name = name + "@60%"
				printRow(res, median(all["bare"]).rps(), serverCPU)
				if name == "single" {
					atGoal = append(atGoal, res)
				}
			}
		}
		fmt.Println()
	}
	fmt.Printf("load average after: %s\n", loadAverage())
	summarize(o, all, atGoal)
	return nil
}

// medianP99 is the run of median p99 latency (the upper median: conservative).
func medianP99(rs []*loadResult) *loadResult {
	if len(rs) == 0 {
		return nil
	}
	rs = append([]*loadResult(nil), rs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].lat.quantile(0.99) < rs[j].lat.quantile(0.99) })
	return rs[len(rs)/2]
}

// median is the result of median req/s.
func median(rs []*loadResult) *loadResult {
	if len(rs) == 0 {
		return nil
	}
	rs = append([]*loadResult(nil), rs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps() < rs[j].rps() })
	return rs[len(rs)/2]
}

func printHeader(split bool) {
	cpu := "CPU (share of all cores; CPU time per request)"
	if split {
		cpu = "CPU client / server (share of all cores; CPU time per request)"
	}
	fmt.Printf("%-12s %10s %8s %9s %9s %9s %9s %9s %9s %7s  %s\n", "target", "req/s", "vs bare",
		"p50", "p90", "p99", "p99.9", "max", "mean", "errors", cpu)
}

func printRow(r *loadResult, bare, serverCPU float64) {
	ratio := "-"
	if bare > 0 && r.name != "bare" {
		ratio = fmt.Sprintf("%.1f%%", 100*r.rps()/bare)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
	cores := float64(runtime.NumCPU())
	n := float64(r.requests + r.errors)
	share := func(sec float64) string {
		return fmt.Sprintf("%.0f%% %.1fus", 100*sec/r.elapsed.Seconds()/cores, sec/n*1e6)
	}
	cpu := share(r.cpu)
	if serverCPU >= 0 {
		cpu = share(r.cpu) + " / " + share(serverCPU)
	}
	fmt.Printf("%-12s %10.0f %8s %9s %9s %9s %9s %9s %9s %7d  %s\n", r.name, r.rps(), ratio,
		ms(r.lat.quantile(0.50)), ms(r.lat.quantile(0.90)), ms(r.lat.quantile(0.99)), ms(r.lat.quantile(0.999)),
		ms(time.Duration(r.lat.max)), ms(r.lat.mean()), r.errors, cpu)
	if r.errors > 0 {
		codes := []string{}
		for s, n := range r.statuses {
			if s < 200 || s > 299 {
				codes = append(codes, fmt.Sprintf("%d x%d", s, n))
			}
		}
		sort.Strings(codes)
		fmt.Printf("%-12s   errors: %s %s\n", "", strings.Join(codes, ", "), r.firstErr)
	}
}

// summarize checks the goals on the median round.
func summarize(o httpOptions, all map[string][]*loadResult, atGoals []*loadResult) {
	bares := all["bare"]
	if len(bares) == 0 {
		return
	}
	label := "goals"
	if len(bares) > 1 {
		label = fmt.Sprintf("goals (median over %d rounds of each round's ratio to that round's bare run)", len(bares))
	}
	fmt.Printf("%s:\n", label)
	// ratio pairs each run with the bare run of its round (same machine conditions) and returns
	// the median ratio and the run it came from.
	ratio := func(name string) (float64, *loadResult, []string) {
		type pair struct {
			ratio float64
			r     *loadResult
		}
		var ps []pair
		for i, r := range all[name] {
			if i < len(bares) {
				ps = append(ps, pair{r.rps() / bares[i].rps(), r})
			}
		}
		if len(ps) == 0 {
			return 0, nil, nil
		}
		var each []string
		for _, p := range ps {
			each = append(each, fmt.Sprintf("%.1f%%", 100*p.ratio))
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].ratio < ps[j].ratio })
		m := ps[(len(ps)-1)/2] // the lower median: conservative
		return m.ratio, m.r, each
	}
	check := func(name, what string, minRatio float64, p99 bool) {
		rt, r, each := ratio(name)
		if r == nil {
			return
		}
		ok := rt >= minRatio && r.errors == 0
		line := fmt.Sprintf("  %-38s %8.0f req/s = %5.1f%% of bare (goal >= %.0f%%)", what, r.rps(), 100*rt, 100*minRatio)
		if len(each) > 1 {
			line += " [rounds: " + strings.Join(each, ", ") + "]"
		}
		if p99 {
			q := r.lat.quantile(0.99)
			line += fmt.Sprintf(", p99 %.2f ms in that closed-loop run", float64(q)/1e6)
			if atGoal := medianP99(atGoals); atGoal != nil { // "p99 under 10 ms at that load", literally
				q = atGoal.lat.quantile(0.99)
				line += fmt.Sprintf(", p99 %.2f ms open loop at 60%% of bare (%.0f of %.0f req/s sent)",
					float64(q)/1e6, atGoal.rps(), atGoal.rate)
				if len(atGoals) > 1 {
					var each []string
					for _, r := range atGoals {
						each = append(each, fmt.Sprintf("%.2f", float64(r.lat.quantile(0.99))/1e6))
					}
					line += " [rounds: " + strings.Join(each, ", ") + " ms]"
				}
				for _, r := range atGoals {
					ok = ok && r.errors == 0
				}
			}
			line += " (goal < 10 ms)"
			ok = ok && q < 10*time.Millisecond
		}
		verdict := "MET"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("%s  %s\n", line, verdict)
	}
	check("single", "OFREP single, 1,000 flags", 0.60, true)
	check("bulk", "OFREP bulk, 100 client-side of 1,000", 0.25, false)
	check("bulk-server", "OFREP bulk, 100 flags, server key", 0.25, false)
	if rt, r, _ := ratio("bare-mw"); r != nil {
		fmt.Printf("  %-38s %8.0f req/s = %5.1f%% of bare (diagnostic: the platform middleware alone)\n",
			"bare handler + platform middleware", r.rps(), 100*rt)
	}
	if atGoal := medianP99(atGoals); atGoal != nil && atGoal.rps() < 0.95*atGoal.rate {
		fmt.Printf("  note: the open-loop run could not send its target rate: single evaluation has no headroom at 60%% of bare here\n")
	}
}
