package sdkapi

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/telemetry"
)

// ExposureOptions configure server-side exposure logging: when an OFREP answer serves a variation
// of a running experiment to a context with a targeting key, the api role records that exposure
// itself, so an experiment works with OpenFeature clients that never post events.
type ExposureOptions struct {
	// Publish hands a batch to the telemetry stream (telemetry.Ingestor.Publish): the stream,
	// event tables and per-user dedup of POST /sdk/v1/events.
	Publish func(context.Context, *telemetry.Batch) error
	// Disabled lists the environments ("project/environment") where exposures are not logged
	// (the environments' server_exposures setting); it is read when the log starts and every
	// Refresh. Nil logs in every environment.
	Disabled func(context.Context) ([]string, error)
	// Refresh is how often Disabled is read again. Default 10s.
	Refresh time.Duration
	// FlushInterval bounds how long an exposure waits in memory. Default 2s.
	FlushInterval time.Duration
	// MaxPending bounds the exposures held in memory (waiting, or kept for a retry while the
	// stream is unavailable); past it new exposures are dropped and counted, never waited for.
	// Default 100,000.
	MaxPending int
	// BatchSize flushes early once this many exposures wait. Default 1,000.
	BatchSize int
	// Remember is how many recently logged exposures (user, experiment, variation) are
	// remembered, so a user evaluated again is not logged again: only the first exposure counts
	// in the analysis. Two generations of this size are kept. Default 200,000.
	Remember int
}

// exposureKey identifies an exposure worth logging once: a user saw a variation of an experiment
// (through a flag) in an environment.
type exposureKey struct {
	env                               envID
	user, flag, experiment, variation string
}

// exposure is one exposure waiting to be published.
type exposure struct {
	key    exposureKey
	at     time.Time
	reason string
}

// exposureLog buffers exposures in memory and publishes them in batches from its own goroutine:
// the hot path takes a mutex, looks the exposure up among those already logged and appends it
// when it is new; it never does I/O or waits. Repeated evaluations of a user are not logged
// again (the analysis only uses each user's first exposure); forgetting an old one costs one
// more row, which the per-user dedup of the telemetry projector absorbs.
type exposureLog struct {
	opts     ExposureOptions
	disabled atomic.Pointer[map[envID]bool]
	log      *slog.Logger
	kick     chan struct{}

	mu            sync.Mutex
	seen, seenOld map[exposureKey]struct{}
	pending       []exposure
	retry         []*telemetry.Batch // published in vain; kept (same event ids) for the next flush
	held          int                // events in retry

	recorded, dropped, published prometheus.Counter
	disabledEnvs                 prometheus.Gauge
}

func newExposureLog(opts ExposureOptions, reg prometheus.Registerer, log *slog.Logger) *exposureLog {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 2 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 100_000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	opts.BatchSize = min(opts.BatchSize, telemetry.MaxBatchEvents)
	if opts.Remember <= 0 {
		opts.Remember = 200_000
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	l := &exposureLog{opts: opts, log: log, kick: make(chan struct{}, 1),
		seen: map[exposureKey]struct{}{}, seenOld: map[exposureKey]struct{}{},
		recorded: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_sdk_exposures_recorded_total",
			Help: "Experiment exposures of OFREP answers taken by the api role for publishing (first sight of a user, experiment and variation)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_sdk_exposures_dropped_total",
			Help: "Experiment exposures dropped because the in-memory buffer was full (the telemetry stream stayed unavailable or slow)."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_sdk_exposures_published_total",
			Help: "Server-side exposure events published to the telemetry stream."}),
	}
	l.disabledEnvs = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_sdk_exposures_disabled_environments",
		Help: "Environments whose server_exposures setting is off, as the api role last read them."})
	l.disabled.Store(&map[envID]bool{})
	if reg != nil {
		reg.MustRegister(l.recorded, l.dropped, l.published, l.disabledEnvs)
	}
	return l
}

// refreshDisabled reads which environments have exposure logging turned off. On failure the
// previous set stays (the next refresh tries again).
func (l *exposureLog) refreshDisabled(ctx context.Context) {
	if l.opts.Disabled == nil {
		return
	}
	list, err := l.opts.Disabled(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("exposure logging settings not read; the previous ones stay", "err", err)
		}
		return
	}
	m := make(map[envID]bool, len(list))
	for _, e := range list {
		if p, env, ok := strings.Cut(e, "/"); ok {
			m[envID{p, env}] = true
		}
	}
	l.disabled.Store(&m)
	l.disabledEnvs.Set(float64(len(m)))
}

// logs reports whether exposures of env are recorded (a nil log records none).
func (l *exposureLog) logs(env envID) bool { return l != nil && !(*l.disabled.Load())[env] }

// record notes that r, an OFREP answer served to user in env at now, exposed the user to an
// experiment, and reports whether it is taken for publishing: false when r is no exposure, when
// the same exposure was logged recently, or when the buffer is full (dropped and counted; a
// later evaluation tries again). It never waits for I/O.
func (l *exposureLog) record(env envID, user string, now time.Time, r *evaluation.Result) bool {
	if r.Experiment == "" || r.Variation == "" || r.IsError() {
		return false
	}
	k := exposureKey{env: env, user: user, flag: r.FlagKey, experiment: r.Experiment, variation: r.Variation}
	l.mu.Lock()
	if _, ok := l.seen[k]; ok {
		l.mu.Unlock()
		return false
	}
	if _, ok := l.seenOld[k]; ok {
		l.seen[k] = struct{}{} // still in use: keep it past the next rotation
		l.mu.Unlock()
		return false
	}
	if len(l.pending)+l.held >= l.opts.MaxPending {
		l.mu.Unlock()
		l.dropped.Inc()
		return false
	}
	if len(l.seen) >= l.opts.Remember {
		l.seenOld, l.seen = l.seen, make(map[exposureKey]struct{}, len(l.seen))
	}
	l.seen[k] = struct{}{}
	l.pending = append(l.pending, exposure{key: k, at: now, reason: r.Reason})
	full := len(l.pending) >= l.opts.BatchSize
	l.mu.Unlock()
	l.recorded.Inc()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// run flushes every FlushInterval, when a batch fills, and once more when ctx ends.
// It also reads the environments' settings at start and every Refresh.
func (l *exposureLog) run(ctx context.Context) {
	l.refreshDisabled(ctx)
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	refresh := time.NewTicker(l.opts.Refresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			l.flush(final)
			cancel()
			return
		case <-refresh.C:
			l.refreshDisabled(ctx)
			continue
		case <-t.C:
		case <-l.kick:
		}
		l.flush(ctx)
	}
}

// flush publishes what waits, one batch per environment (at most BatchSize events each), retries
// first. A batch the stream does not take is kept, with its event ids, while MaxPending allows.
func (l *exposureLog) flush(ctx context.Context) {
	l.mu.Lock()
	pending, retry := l.pending, l.retry
	l.pending, l.retry, l.held = make([]exposure, 0, cap(pending)), nil, 0
	l.mu.Unlock()

	byEnv := map[envID]*telemetry.Batch{}
	batches := retry
	now := time.Now()
	for _, x := range pending {
		b := byEnv[x.key.env]
		if b == nil || b.Len() >= l.opts.BatchSize {
			b = telemetry.NewBatch(x.key.env.project, x.key.env.environment, now)
			byEnv[x.key.env] = b
			batches = append(batches, b)
		}
		b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: x.at,
			Flag: x.key.flag, Variation: x.key.variation, Reason: x.reason, User: x.key.user, Experiment: x.key.experiment})
	}
	var failed []*telemetry.Batch
	for i, b := range batches {
		if ctx.Err() != nil {
			failed = append(failed, batches[i:]...)
			break
		}
		if err := l.opts.Publish(ctx, b); err != nil {
			failed = append(failed, b)
			continue
		}
		l.published.Add(float64(b.Len()))
	}
	if len(failed) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	room := l.opts.MaxPending - len(l.pending) - l.held
	lost := 0
	for _, b := range failed {
		if b.Len() > room {
			lost += b.Len()
			l.forget(b) // so those users' next evaluations are logged again
			continue
		}
		room -= b.Len()
		l.retry = append(l.retry, b)
		l.held += b.Len()
	}
	if lost > 0 {
		l.dropped.Add(float64(lost))
		l.log.Error("experiment exposures dropped: the telemetry stream stayed unavailable", "exposures", lost)
	} else {
		l.log.Warn("experiment exposures kept for a retry: the telemetry stream did not take them", "batches", len(l.retry))
	}
}

// forget removes the exposures of a batch that was dropped from what is remembered as logged.
// Called with l.mu held.
func (l *exposureLog) forget(b *telemetry.Batch) {
	e := &b.Evaluations
	env := envID{b.Project, b.Environment}
	for i := range e.EventID {
		k := exposureKey{env: env, user: e.User[i], flag: e.Flag[i], experiment: e.Experiment[i], variation: e.Variation[i]}
		delete(l.seen, k)
		delete(l.seenOld, k)
	}
}
