package sdkapi

// Benchmarks of the OFREP handler path without the network: echo with the platform's middleware
// (httpapi.ErrorHandler, Recover, Requests with metrics) and the SDK routes, serving in-memory
// snapshots of the deploy/load fixture (1,000 flags, 100 of them client_side). Run with
//
//	go test -run '^$' -bench . -benchmem ./services/roles/sdkapi/
//
// This is an internal test because sdkapi has no exported way to install a ruleset without
// PostgreSQL (Snapshots.Load reads the read model); see benchInstall.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"syscall"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

const (
	benchClientKey     = "client-bench000000000000000000"
	benchServerKey     = "server-bench000000000000000000"
	benchSmallClient   = "client-small000000000000000000"
	benchSmallServer   = "server-small000000000000000000"
	benchContextsCount = 256
)

// benchInstall publishes rs as the current snapshot of its environment, as Snapshots.refresh does
// after loading it from the read model.
func benchInstall(tb testing.TB, s *Snapshots, rs *domain.Ruleset) {
	tb.Helper()
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		tb.Fatal(err)
	}
	if ps := compiled.Problems(); len(ps) > 0 {
		tb.Fatalf("ruleset problems: %v", ps)
	}
	id := envID{rs.Project, rs.Environment}
	snap, err := newSnapshot(id, rs, compiled)
	if err != nil {
		tb.Fatal(err)
	}
	s.environment(id, true).current.Store(snap)
}

func benchRuleset(tb testing.TB, project, clientKey, serverKey string, n int) *domain.Ruleset {
	p, err := fixture.Project(project, clientKey, serverKey)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := fixture.New(project, n).Build(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b.Ruleset(project, 42)
}

// benchEcho is the SDK API as services/platform wires it, over in-memory snapshots: "load" with
// 1,000 flags (100 client_side) and "small" with 100 flags.
func benchEcho(tb testing.TB) *echo.Echo {
	e, _ := benchServer(tb)
	return e
}

// benchServer is benchEcho with the snapshots it serves.
func benchServer(tb testing.TB) (*echo.Echo, *Snapshots) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	snaps := NewSnapshots(nil, log, newCounterFlusher(nil, reg, log))
	benchInstall(tb, snaps, benchRuleset(tb, "load", benchClientKey, benchServerKey, 1000))
	benchInstall(tb, snaps, benchRuleset(tb, "small", benchSmallClient, benchSmallServer, 100))
	keys := map[string]access.SDKKey{
		benchClientKey:   {Project: "load", Environment: fixture.Environment, Kind: domain.ClientSideKey},
		benchServerKey:   {Project: "load", Environment: fixture.Environment, Kind: domain.ServerSideKey},
		benchSmallClient: {Project: "small", Environment: fixture.Environment, Kind: domain.ClientSideKey},
		benchSmallServer: {Project: "small", Environment: fixture.Environment, Kind: domain.ServerSideKey},
	}
	snaps.keys.Store(&keys)
	// Exposure logging is on, as the platform runs it by default (nothing is exposed: the
	// fixture runs no experiment; BenchmarkOFREPExperiments measures that case).
	srv := New(snaps, log, reg, Options{Exposures: &ExposureOptions{Publish: discardBatch}})
	go srv.exposures.run(tb.Context())
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Use(httpapi.Recover(log), httpapi.Requests(log, httpapi.NewMetrics(reg)))
	srv.Register(e)
	return e, snaps
}

// benchWriter is a reusable ResponseWriter that keeps the status and counts the body, so the
// benchmark measures the handler, not httptest.ResponseRecorder's buffering.
type benchWriter struct {
	h      http.Header
	status int
	n      int
	last   []byte // the body of the last response, when keep is set
	keep   bool
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += len(p)
	if w.keep {
		w.last = append(w.last, p...)
	}
	return len(p), nil
}
func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n, w.last = 0, 0, w.last[:0]
}

// benchRequests are pre-built requests (one per context) whose bodies are re-armed per use.
type benchRequest struct {
	req    *http.Request
	body   []byte
	reader *bytes.Reader
}

func benchRequests(tb testing.TB, path func(i int) string, key string) []*benchRequest {
	r := rand.New(rand.NewPCG(7, 11))
	out := make([]*benchRequest, benchContextsCount)
	for i := range out {
		body := fixture.RequestBody(fixture.Context(r))
		rd := bytes.NewReader(body)
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1"+path(i), io.NopCloser(rd))
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.ContentLength = int64(len(body))
		req.RemoteAddr = "127.0.0.1:40000"
		out[i] = &benchRequest{req: req, body: body, reader: rd}
	}
	return out
}

func benchRun(b *testing.B, h http.Handler, reqs []*benchRequest, check func(*testing.B, []byte)) {
	w := &benchWriter{h: http.Header{}, keep: true}
	// Check the answers once before timing.
	for _, r := range reqs[:8] {
		r.reader.Reset(r.body)
		w.reset()
		h.ServeHTTP(w, r.req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d: %s", w.status, w.last)
		}
		check(b, w.last)
	}
	w.keep = false
	var bytesOut int
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := benchCPU()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		i++
		r.reader.Reset(r.body)
		w.reset()
		h.ServeHTTP(w, r.req)
		bytesOut += w.n
	}
	// CPU time of the whole process (GC workers included) per operation: unlike ns/op it does
	// not grow when other processes take the cores, so it compares runs on a busy machine.
	b.ReportMetric(float64(benchCPU()-cpu0)/float64(i), "cpu-ns/op")
	b.ReportMetric(float64(bytesOut)/float64(i), "resp-bytes/op")
}

// benchCPU is the process's user+system CPU time in nanoseconds.
func benchCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkBareEcho is the reference the goals compare with: an echo handler (no middleware)
// answering a small JSON body to the same requests.
func BenchmarkBareEcho(b *testing.B) {
	e := echo.New()
	e.POST("/bare", func(c echo.Context) error {
		return c.JSON(http.StatusOK, struct {
			Key     string `json:"key"`
			Value   bool   `json:"value"`
			Reason  string `json:"reason"`
			Variant string `json:"variant"`
		}{"x", true, "STATIC", "on"})
	})
	reqs := benchRequests(b, func(int) string { return "/bare" }, benchServerKey)
	benchRun(b, e, reqs, func(*testing.B, []byte) {})
}

// BenchmarkOFREPSingle: POST /ofrep/v1/evaluate/flags/{key} with a server-side key over the
// environment of 1,000 flags, a different flag and context each request.
func BenchmarkOFREPSingle(b *testing.B) {
	e := benchEcho(b)
	reqs := benchRequests(b, func(i int) string { return "/ofrep/v1/evaluate/flags/" + fixture.FlagKey(i*37%1000) }, benchServerKey)
	benchRun(b, e, reqs, func(b *testing.B, body []byte) {
		var r evaluationSuccess
		if err := json.Unmarshal(body, &r); err != nil || r.Key == "" || r.Reason == "" {
			b.Fatalf("bad answer %s (%v)", body, err)
		}
	})
}

func checkBulk(n int) func(*testing.B, []byte) {
	return func(b *testing.B, body []byte) {
		var r struct {
			Flags []map[string]any `json:"flags"`
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.Flags) != n {
			b.Fatalf("bulk answer with %d flags, want %d (%v)", len(r.Flags), n, err)
		}
		for _, f := range r.Flags {
			if _, failed := f["errorCode"]; failed {
				b.Fatalf("bulk evaluation failed: %v", f)
			}
		}
	}
}

// BenchmarkOFREPBulk100: POST /ofrep/v1/evaluate/flags with a client-side key over the
// environment of 1,000 flags, of which the 100 client_side ones are evaluated and answered (the
// browser and mobile use of bulk evaluation).
func BenchmarkOFREPBulk100(b *testing.B) {
	e := benchEcho(b)
	reqs := benchRequests(b, func(int) string { return "/ofrep/v1/evaluate/flags" }, benchClientKey)
	benchRun(b, e, reqs, checkBulk(100))
}

// BenchmarkOFREPBulk100Server: the same with a server-side key over an environment of 100 flags
// (every flag evaluated and counted).
func BenchmarkOFREPBulk100Server(b *testing.B) {
	e := benchEcho(b)
	reqs := benchRequests(b, func(int) string { return "/ofrep/v1/evaluate/flags" }, benchSmallServer)
	benchRun(b, e, reqs, checkBulk(100))
}

// BenchmarkOFREPBulk1000Server: bulk evaluation of all 1,000 flags with a server-side key (every
// flag evaluated and counted): the load tool's bulk-1000 target (issue 19) without the network.
func BenchmarkOFREPBulk1000Server(b *testing.B) {
	e := benchEcho(b)
	reqs := benchRequests(b, func(int) string { return "/ofrep/v1/evaluate/flags" }, benchServerKey)
	benchRun(b, e, reqs, checkBulk(1000))
}

func discardBatch(context.Context, *telemetry.Batch) error { return nil }

// BenchmarkOFREPExperiments: bulk evaluation with a server-side key over 100 flags, 10 of which
// run an experiment on every user who reaches their default serve, with server-side exposure
// logging on (each exposure goes to the in-memory buffer, flushed to a sink that keeps nothing)
// and off.
func BenchmarkOFREPExperiments(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("exposures=%v", on), func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			reg := prometheus.NewRegistry()
			snaps := NewSnapshots(nil, log, newCounterFlusher(nil, reg, log))
			rs := benchRuleset(b, "small", benchSmallClient, benchSmallServer, 100)
			experiments := 0
			for key, f := range rs.Flags {
				if experiments == 10 || len(f.Variations) < 2 {
					continue
				}
				f.Experiment = &domain.ExperimentSplit{Key: "exp-" + key, Seed: "seed-" + key, Allocation: 100000,
					Variations: []domain.WeightedVariation{{Variation: f.Variations[0].Key, Weight: 50000},
						{Variation: f.Variations[1].Key, Weight: 50000}}}
				experiments++
			}
			benchInstall(b, snaps, rs)
			keys := map[string]access.SDKKey{benchSmallServer: {Project: "small", Environment: fixture.Environment, Kind: domain.ServerSideKey}}
			snaps.keys.Store(&keys)
			opts := Options{}
			if on {
				opts.Exposures = &ExposureOptions{Publish: discardBatch}
			}
			srv := New(snaps, log, reg, opts)
			if on {
				go srv.exposures.run(b.Context())
			}
			e := echo.New()
			e.HTTPErrorHandler = httpapi.ErrorHandler(log)
			e.Use(httpapi.Recover(log), httpapi.Requests(log, httpapi.NewMetrics(reg)))
			srv.Register(e)
			reqs := benchRequests(b, func(int) string { return "/ofrep/v1/evaluate/flags" }, benchSmallServer)
			benchRun(b, e, reqs, func(b *testing.B, body []byte) {
				checkBulk(100)(b, body)
				if !bytes.Contains(body, []byte(`"experiment":"exp-`)) {
					b.Fatalf("no experiment served: %s", body)
				}
			})
		})
	}
}
