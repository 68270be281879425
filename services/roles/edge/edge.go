// Package edge is the edge role: a process that serves the SDK API (OFREP, /sdk/v1/ruleset,
// /sdk/v1/stream, /sdk/v1/events) from a mirror of a core's rulesets and SDK keys, with neither
// PostgreSQL nor Redis. It follows the core through its /edge/v1 routes (services/roles/sdkapi,
// mirror.go) with an edge token: a change stream says when to fetch the mirror document again
// (conditional on its ETag); the last document is kept in a snapshot file, so an edge restarted
// while the core is down serves what it served before. SDK events are spooled to a bounded local
// disk queue and forwarded in batches, with retries, to the core, where their event ids make a
// batch sent twice count once. The sdkapi.Server is the api role's own: the edge only plugs in the
// Source (the mirror), the EventIngestor (the spool) and the CountSink.
package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/ingest"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
)

// Config configures an edge.
type Config struct {
	// Upstream is the core's base URL (http://core:8080).
	Upstream string
	// Token is the edge token (scope edge) the core issued for this edge.
	Token string
	// Dir holds the snapshot file and the event spool.
	Dir string
	// SpoolMaxBytes bounds the event spool; past it /sdk/v1/events answers 503. Default 256 MiB.
	SpoolMaxBytes int64
	// Limits of one SDK events request, as the core's.
	Limits ingest.Limits
	// MaxRetry bounds the pause between attempts to reach the core. Default 5s.
	MaxRetry time.Duration
	// StaleAfter ends a change stream that said nothing (no heartbeat) for this long, so a dead
	// connection is noticed. Default 45s (three of the core's default heartbeats).
	StaleAfter time.Duration
	// ForwardBatches and ForwardBytes bound one POST of events to the core. Defaults 200 and 4 MiB.
	ForwardBatches int
	ForwardBytes   int64
	Client         *http.Client
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

func (c *Config) defaults() {
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = 256 << 20
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = 5 * time.Second
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 45 * time.Second
	}
	if c.ForwardBatches <= 0 {
		c.ForwardBatches = 200
	}
	if c.ForwardBytes <= 0 {
		c.ForwardBytes = 4 << 20
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Upstream = strings.TrimRight(c.Upstream, "/")
}

// held is a mirror document as served: parsed, with its ETag.
type held struct {
	etag   string
	mirror sdkapi.Mirror
	keys   map[string]access.SDKKey
	envs   map[[2]string]sdkapi.MirrorEnvironment
	at     time.Time // when it was fetched from the core
}

// snapshotFile is the on-disk form of the last mirror.
type snapshotFile struct {
	ETag      string        `json:"etag"`
	FetchedAt time.Time     `json:"fetched_at"`
	Mirror    sdkapi.Mirror `json:"mirror"`
}

// Edge follows a core and feeds an sdkapi.Server.
type Edge struct {
	cfg   Config
	log   *slog.Logger
	spool *spool

	current  atomic.Pointer[held]
	onChange func() // tells the SDK server to load the snapshots again

	upstreamUp atomic.Bool
	lastErr    atomic.Pointer[string]

	fetchMu sync.Mutex // one mirror fetch at a time

	metrics *metrics
}

type metrics struct {
	syncs, syncFailures   prometheus.Counter
	forwarded, forwardErr prometheus.Counter
	refused               *prometheus.CounterVec
	rejected              prometheus.Counter
	countsDropped         prometheus.Counter
}

// New opens the edge's directory: the snapshot file, if any, is loaded (so the edge serves at
// once, whether or not the core answers) and spooled events of an earlier run are taken over.
func New(cfg Config) (*Edge, error) {
	cfg.defaults()
	if cfg.Upstream == "" || cfg.Token == "" || cfg.Dir == "" {
		return nil, errors.New("edge: upstream, token and directory are required")
	}
	sp, err := openSpool(filepath.Join(cfg.Dir, "spool"), cfg.SpoolMaxBytes)
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, log: cfg.Logger, spool: sp, onChange: func() {}, metrics: newMetrics(cfg.Registerer, sp)}
	if err := e.loadSnapshotFile(); err != nil {
		e.log.Warn("edge: snapshot file unreadable; waiting for the core", "err", err)
	}
	return e, nil
}

func newMetrics(reg prometheus.Registerer, sp *spool) *metrics {
	m := &metrics{
		syncs:         prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_mirror_syncs_total", Help: "Mirror documents fetched from the core (200 answers)."}),
		syncFailures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_mirror_failures_total", Help: "Failed attempts to follow the core."}),
		forwarded:     prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_forwarded_batches_total", Help: "Event batches the core accepted from this edge."}),
		forwardErr:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_forward_failures_total", Help: "Failed forwards of spooled event batches (retried)."}),
		refused:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_edge_events_refused_total", Help: "SDK event requests refused at the edge, by outcome."}, []string{"outcome"}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_events_rejected_total", Help: "Events of accepted batches refused one by one."}),
		countsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_edge_counts_dropped_total", Help: "Evaluation count batches dropped because the spool was full."}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vexil_edge_spool_batches", Help: "Event batches waiting in the spool for the core."},
		func() float64 { n, _ := sp.Depth(); return float64(n) })
	if reg != nil {
		reg.MustRegister(m.syncs, m.syncFailures, m.forwarded, m.forwardErr, m.refused, m.rejected, m.countsDropped, depth)
	}
	return m
}

// OnChange sets what to call when a new mirror is held (the SDK server's Resync).
func (e *Edge) OnChange(fn func()) { e.onChange = fn }

func (e *Edge) snapshotPath() string { return filepath.Join(e.cfg.Dir, "snapshot.json") }

func (e *Edge) loadSnapshotFile() error {
	b, err := os.ReadFile(e.snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f snapshotFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("edge: decode %s: %w", e.snapshotPath(), err)
	}
	e.hold(f.ETag, f.Mirror, f.FetchedAt)
	e.log.Info("edge: serving the snapshot file until the core answers", "fetched_at", f.FetchedAt, "environments", len(f.Mirror.Environments))
	return nil
}

func (e *Edge) hold(etag string, m sdkapi.Mirror, at time.Time) {
	h := &held{etag: etag, mirror: m, at: at, keys: make(map[string]access.SDKKey, len(m.Keys)),
		envs: make(map[[2]string]sdkapi.MirrorEnvironment, len(m.Environments))}
	for _, k := range m.Keys {
		h.keys[k.Key] = access.SDKKey{Project: k.Project, Environment: k.Environment, Kind: k.Kind}
	}
	for _, env := range m.Environments {
		h.envs[[2]string{env.Project, env.Environment}] = env
	}
	e.current.Store(h)
}

// Versions implements sdkapi.Source.
func (e *Edge) Versions(_ context.Context, project string) ([]rulesets.EnvironmentVersion, error) {
	h := e.current.Load()
	if h == nil {
		return nil, domain.Errorf(domain.EUnavailable, "the edge holds no mirror yet: the core has not answered and there is no snapshot file")
	}
	var out []rulesets.EnvironmentVersion
	for _, env := range h.mirror.Environments {
		if project == "" || env.Project == project {
			out = append(out, rulesets.EnvironmentVersion{Project: env.Project, Environment: env.Environment, Version: env.Version})
		}
	}
	return out, nil
}

// Ruleset implements sdkapi.Source.
func (e *Edge) Ruleset(_ context.Context, project, environment string) (*domain.Ruleset, error) {
	h := e.current.Load()
	if h == nil {
		return nil, domain.Errorf(domain.EUnavailable, "the edge holds no mirror yet")
	}
	env, ok := h.envs[[2]string{project, environment}]
	if !ok {
		return nil, domain.Errorf(domain.ENotFound, "environment %s/%s is not in the mirror", project, environment)
	}
	rs := new(domain.Ruleset)
	if err := json.Unmarshal(env.Ruleset, rs); err != nil {
		return nil, fmt.Errorf("edge: decode ruleset %s/%s: %w", project, environment, err)
	}
	return rs, nil
}

// Keys implements sdkapi.Source.
func (e *Edge) Keys(context.Context) (map[string]access.SDKKey, error) {
	h := e.current.Load()
	if h == nil {
		return nil, domain.Errorf(domain.EUnavailable, "the edge holds no mirror yet")
	}
	return h.keys, nil
}

// ExposuresOff lists the environments without server-side exposures, as the core said.
func (e *Edge) ExposuresOff(context.Context) ([]string, error) {
	if h := e.current.Load(); h != nil {
		return h.mirror.ExposuresOff, nil
	}
	return nil, nil
}

// Run follows the core (change stream, mirror fetches) and forwards spooled events until ctx
// ends.
func (e *Edge) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.forward(ctx) }()
	e.follow(ctx)
	wg.Wait()
	return nil
}

// follow keeps a change stream to the core open, fetching the mirror at every change and after
// every reconnection (a change may have passed meanwhile), with a growing pause between failed
// attempts.
func (e *Edge) follow(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := e.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		e.down(err)
		if time.Since(start) > 10*time.Second {
			pause = 100 * time.Millisecond // it was up a while: retry soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(pause*2, e.cfg.MaxRetry)
	}
}

func (e *Edge) down(err error) {
	if e.upstreamUp.Swap(false) {
		e.log.Warn("edge: lost the core; serving the last mirror", "err", err)
	}
	msg := err.Error()
	e.lastErr.Store(&msg)
	e.metrics.syncFailures.Inc()
}

// stream reads one change stream until it fails.
func (e *Edge) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.cfg.Upstream+sdkapi.MirrorChangesPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.cfg.Token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := e.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("edge: change stream: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("edge: change stream: %s: %s", res.Status, bytes.TrimSpace(body))
	}
	// A stream silent past StaleAfter (no heartbeat) is dead: end it.
	stale := time.AfterFunc(e.cfg.StaleAfter, cancel)
	defer stale.Stop()
	sc := bufio.NewScanner(res.Body)
	event := ""
	for sc.Scan() {
		stale.Reset(e.cfg.StaleAfter)
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case line == "" && event != "":
			if event == "changed" {
				if err := e.Sync(ctx); err != nil {
					return err
				}
			}
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("edge: change stream: %w", err)
	}
	return errors.New("edge: the core ended the change stream")
}

// Sync fetches the mirror if it changed (If-None-Match), then keeps it: in memory, in the
// snapshot file, and in the SDK server (onChange).
func (e *Edge) Sync(ctx context.Context) error {
	e.fetchMu.Lock()
	defer e.fetchMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.cfg.Upstream+sdkapi.MirrorPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.cfg.Token)
	cur := e.current.Load()
	if cur != nil && cur.etag != "" {
		req.Header.Set("If-None-Match", cur.etag)
	}
	res, err := e.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("edge: fetch mirror: %w", err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusNotModified:
		e.up()
		return nil
	case http.StatusOK:
	default:
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("edge: fetch mirror: %s: %s", res.Status, bytes.TrimSpace(body))
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("edge: read mirror: %w", err)
	}
	var m sdkapi.Mirror
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("edge: decode mirror: %w", err)
	}
	etag := res.Header.Get("ETag")
	now := time.Now().UTC()
	e.hold(etag, m, now)
	e.metrics.syncs.Inc()
	e.up()
	e.onChange()
	file, err := json.Marshal(snapshotFile{ETag: etag, FetchedAt: now, Mirror: m})
	if err == nil {
		err = writeFileSync(e.snapshotPath(), file)
	}
	if err != nil {
		// Serving goes on from memory; only a restart while the core is down would miss it.
		e.log.Error("edge: could not write the snapshot file", "err", err)
	}
	return nil
}

func (e *Edge) up() {
	if !e.upstreamUp.Swap(true) {
		e.log.Info("edge: following the core", "upstream", e.cfg.Upstream)
	}
	e.lastErr.Store(nil)
}

// Health is the edge's state for /readyz.
type Health struct {
	// Serving: a mirror is held (from the core or the snapshot file).
	Serving bool `json:"serving"`
	// Upstream is up while the change stream to the core is open.
	Upstream      string    `json:"upstream"`
	MirrorAt      time.Time `json:"mirror_fetched_at,omitzero"`
	Environments  int       `json:"environments"`
	SpoolBatches  int       `json:"spool_batches"`
	SpoolBytes    int64     `json:"spool_bytes"`
	LastError     string    `json:"last_error,omitempty"`
	SpoolMaxBytes int64     `json:"spool_max_bytes"`
}

// Health reports the edge's state.
func (e *Edge) Health() Health {
	h := Health{Upstream: "down", SpoolMaxBytes: e.cfg.SpoolMaxBytes}
	if e.upstreamUp.Load() {
		h.Upstream = "up"
	}
	if cur := e.current.Load(); cur != nil {
		h.Serving, h.MirrorAt, h.Environments = true, cur.at, len(cur.mirror.Environments)
	}
	h.SpoolBatches, h.SpoolBytes = e.spool.Depth()
	if msg := e.lastErr.Load(); msg != nil {
		h.LastError = *msg
	}
	return h
}

// forward sends spooled batches to the core, oldest first, in requests of up to ForwardBatches,
// until ctx ends; after a failure it waits a growing pause (a Retry-After of the core's at least).
func (e *Edge) forward(ctx context.Context) {
	pause := 100 * time.Millisecond
	for {
		seqs, payloads, err := e.spool.Oldest(e.cfg.ForwardBatches, e.cfg.ForwardBytes)
		if err == nil && len(seqs) > 0 {
			var retryAfter time.Duration
			retryAfter, err = e.post(ctx, payloads)
			if err == nil {
				e.metrics.forwarded.Add(float64(len(seqs)))
				if err := e.spool.Remove(seqs); err != nil {
					e.log.Error("edge: could not remove forwarded batches (they will be sent again and stored once)", "err", err)
				}
				pause = 100 * time.Millisecond
				continue
			}
			pause = max(pause, retryAfter)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.metrics.forwardErr.Inc()
			e.log.Debug("edge: forwarding events failed; retrying", "err", err, "pause", pause)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(pause*2, e.cfg.MaxRetry)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-e.spool.wake:
		}
	}
}

// post sends batches to the core; it returns the core's Retry-After on a refusal.
func (e *Edge) post(ctx context.Context, payloads [][]byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body := sdkapi.EncodeBatches(nil, payloads...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.Upstream+sdkapi.MirrorEventsPath, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+e.cfg.Token)
	req.Header.Set("Content-Type", sdkapi.MirrorBatchesType)
	res, err := e.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("edge: forward events: %w", err)
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode == http.StatusAccepted {
		return 0, nil
	}
	var wait time.Duration
	if secs, err := time.ParseDuration(res.Header.Get("Retry-After") + "s"); err == nil {
		wait = secs
	}
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests {
		// A refusal that no retry changes (a token revoked, an environment out of reach) keeps
		// the batches: an operator fixes the token and they go. Say it loudly.
		e.log.Error("edge: the core refuses spooled events; they stay in the spool", "status", res.Status, "answer", string(bytes.TrimSpace(answer)))
	}
	return wait, fmt.Errorf("edge: forward events: %s: %s", res.Status, bytes.TrimSpace(answer))
}

// Ingestor is the edge's sdkapi.EventIngestor: an accepted batch is on local disk, to be
// forwarded.
func (e *Edge) Ingestor() sdkapi.EventIngestor { return ingestor{e} }

type ingestor struct{ e *Edge }

func (i ingestor) Limits() ingest.Limits { return i.e.cfg.Limits }

// spoolRetryAfter is the Retry-After, in seconds, of a refusal while the spool is full.
const spoolRetryAfter = 30

func (i ingestor) Publish(_ context.Context, b *telemetry.Batch) error {
	payload, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("edge: encode batch: %w", err)
	}
	if err := i.e.spool.Append(payload); err != nil {
		i.e.metrics.refused.WithLabelValues("spool_full").Inc()
		if !errors.Is(err, errSpoolFull) {
			i.e.log.Error("edge: could not spool events", "err", err)
		}
		return &domain.Error{Code: domain.EUnavailable,
			Message: "this edge cannot hold more events until the core takes them; nothing was kept; retry later",
			Details: map[string]any{ingest.RetryAfterDetail: spoolRetryAfter}}
	}
	return nil
}

func (i ingestor) Refused(outcome string, _ int) { i.e.metrics.refused.WithLabelValues(outcome).Inc() }

func (i ingestor) Rejected(n int) { i.e.metrics.rejected.Add(float64(n)) }

// CountSink spools the edge's evaluation counts like the core's api role publishes them:
// evaluation rows without a user, one batch per environment.
func (e *Edge) CountSink() sdkapi.CountSink { return countSink{e} }

type countSink struct{ e *Edge }

func (s countSink) RecordEvaluationCounts(_ context.Context, counts []sdkapi.EvaluationCount) error {
	byEnv := map[[2]string]*telemetry.Batch{}
	var order []*telemetry.Batch
	now := time.Now()
	for _, c := range counts {
		if c.Count <= 0 || c.Flag == "" {
			continue
		}
		key := [2]string{c.Project, c.Environment}
		b := byEnv[key]
		if b == nil || b.Len() >= telemetry.MaxBatchEvents-1 {
			b = telemetry.NewBatch(c.Project, c.Environment, now)
			byEnv[key] = b
			order = append(order, b)
		}
		at := c.From.Add(c.To.Sub(c.From) / 2)
		for n := c.Count; n > 0; n -= math.MaxInt32 {
			b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: at,
				Flag: c.Flag, Variation: c.Variation, Count: int32(min(n, math.MaxInt32))})
		}
	}
	var errs []error
	for _, b := range order {
		payload, err := b.Marshal()
		if err == nil {
			err = s.e.spool.Append(payload)
		}
		if err != nil {
			s.e.metrics.countsDropped.Inc()
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
