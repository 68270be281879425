package sdkapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// Options configure the SDK API.
type Options struct {
	// MaxContextBytes bounds an evaluation request body; larger answers 413. Default 64 KiB.
	MaxContextBytes int64
	// RateLimit is the sustained requests per second allowed per SDK key (burst of the same size);
	// past it the API answers 429 with Retry-After. 0 disables limiting.
	RateLimit float64
	// Heartbeat is the interval of SSE keep-alive comments. Default 15s.
	Heartbeat time.Duration
	// Sink receives evaluation counts in batches (the telemetry path); nil keeps them in /metrics only.
	Sink CountSink
	// FlushInterval of evaluation counts. Default 10s.
	FlushInterval time.Duration
	// Events takes POST /sdk/v1/events batches to the telemetry stream (events.go); nil answers 503.
	Events EventIngestor
	// Exposures turns on server-side exposure logging (exposures.go); nil, or no Publish, is off.
	Exposures *ExposureOptions
	// EdgeAuth resolves an edge token to its scope for the /edge/v1 routes (mirror.go): the
	// core's side of edge serving. Nil: this server serves no edge (404).
	EdgeAuth func(ctx context.Context, secret string) (EdgeScope, error)
	// PublicHold is how long a public stream request waits for a change. Default PublicStreamHold.
	PublicHold time.Duration
	// ExposuresOff lists the environments whose server_exposures setting is off, for the mirror.
	ExposuresOff func(ctx context.Context) ([]string, error)
}

func (o *Options) defaults() {
	if o.MaxContextBytes <= 0 {
		o.MaxContextBytes = 64 << 10
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 10 * time.Second
	}
	if o.PublicHold <= 0 {
		o.PublicHold = PublicStreamHold
	}
}

// Server is the SDK-facing API.
type Server struct {
	snaps   *Snapshots
	log     *slog.Logger
	opts    Options
	limiter *httpapi.Limiter
	flusher *counterFlusher
	streams *streamMetrics
	public  *publicStreamMetrics
	notes   chan notification
	resync  chan struct{}
	// exposures records the experiment exposures of OFREP answers; nil when off.
	exposures *exposureLog
	// stopping is closed by StopStreams: open SSE streams end, so a graceful HTTP shutdown
	// does not wait out its deadline on connections that never go idle.
	stopping     chan struct{}
	stoppingOnce sync.Once
	// beats is the one heartbeat timer of every SSE stream (heartbeat.go).
	beats *heartbeat
	// held are the HTTP/1.1 SSE streams taken over from net/http (heldstream.go).
	held *heldStreams
}

// StopStreams ends every open SSE stream (SDK streams and edges' change streams); clients
// reconnect, to another replica or to this one once it is back. Call it before the HTTP server's
// Shutdown.
func (s *Server) StopStreams() { s.stoppingOnce.Do(func() { close(s.stopping) }) }

// New builds the api role's server and its snapshots (empty until Load or Run).
func New(snaps *Snapshots, log *slog.Logger, reg prometheus.Registerer, opts Options) *Server {
	opts.defaults()
	s := &Server{snaps: snaps, log: log, opts: opts, flusher: snaps.counterLog, streams: newStreamMetrics(reg, snaps),
		public: newPublicStreamMetrics(reg),
		notes:  make(chan notification, 1024), resync: make(chan struct{}, 1), stopping: make(chan struct{}),
		beats: newHeartbeat(opts.Heartbeat)}
	s.held = newHeldStreams(s)
	if opts.RateLimit > 0 {
		s.limiter = httpapi.NewLimiter(opts.RateLimit, opts.RateLimit) // bursts of one second's worth
	}
	if opts.Exposures != nil && opts.Exposures.Publish != nil {
		s.exposures = newExposureLog(*opts.Exposures, reg, log)
	}
	return s
}

// NewSnapshotsFor builds the snapshots and the counter flusher that a Server reports through.
func NewSnapshotsFor(db *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer, sink CountSink) *Snapshots {
	s := NewSnapshots(db, log, newCounterFlusher(sink, reg, log))
	if reg != nil {
		reg.MustRegister(s.loads)
	}
	return s
}

// NewSnapshotsFromSource builds snapshots that read source (an edge's mirror of its core) and the
// counter flusher that a Server reports through.
func NewSnapshotsFromSource(source Source, log *slog.Logger, reg prometheus.Registerer, sink CountSink) *Snapshots {
	return NewSnapshotsFrom(source, log, newCounterFlusher(sink, reg, log))
}

// LimitFlagSeries bounds the label sets of vexil_sdk_evaluations_total: the first n (project,
// environment, flag, variation) sets get series of their own, later ones count under flag and
// variation "other" of their environment; 0 labels no flag at all. Unbounded by default.
func (s *Snapshots) LimitFlagSeries(n int) {
	if s.counterLog != nil {
		s.counterLog.limitSeries(n)
	}
}

// streamPath is the SSE route.
const streamPath = "/sdk/v1/stream"

// IsStream reports whether the request is an SSE stream: it stays open, bounded per write.
func IsStream(c echo.Context) bool {
	p := c.Path()
	return p == streamPath || p == MirrorChangesPath || p == PublicStreamPath
}

// Register adds the SDK routes.
func (s *Server) Register(e *echo.Echo) {
	e.POST("/ofrep/v1/evaluate/flags/:key", s.evaluateFlag)
	e.POST("/ofrep/v1/evaluate/flags", s.evaluateFlags)
	e.GET("/ofrep/v1/configuration", s.configuration)
	e.GET("/sdk/v1/ruleset", s.ruleset)
	e.GET(streamPath, s.stream)
	e.GET(PublicStreamPath, s.publicStream)
	e.POST("/sdk/v1/events", s.postEvents)
	e.POST(TrackPath, s.track)
	if s.opts.EdgeAuth != nil {
		e.GET(MirrorPath, s.mirror)
		e.GET(MirrorChangesPath, s.mirrorChanges)
		e.POST(MirrorEventsPath, s.mirrorEvents)
	}
}

// FlushCounts drains the evaluation counters now (also done every FlushInterval by Run).
func (s *Server) FlushCounts(ctx context.Context) []EvaluationCount {
	return s.flusher.flush(ctx, s.snaps.all())
}

// sdkKeyOf reads the SDK key from Authorization: Bearer, X-API-Key, or (SSE only, since browsers'
// EventSource cannot set headers) the key query parameter.
func sdkKeyOf(r *http.Request, allowQuery bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if k, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(k)
		}
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k)
	}
	if allowQuery {
		return r.URL.Query().Get("key")
	}
	return ""
}

// authorize resolves the request's SDK key to its environment snapshot. needServer refuses
// client-side keys with 403.
func (s *Server) authorize(c echo.Context, needServer, allowQuery bool) (access.SDKKey, *snapshot, error) {
	key := sdkKeyOf(c.Request(), allowQuery)
	if key == "" {
		return access.SDKKey{}, nil, domain.Errorf(domain.EUnauthorized, "an SDK key is required: Authorization: Bearer <key> or X-API-Key")
	}
	k, ok := s.snaps.lookupKey(key)
	if !ok {
		return access.SDKKey{}, nil, domain.Errorf(domain.EUnauthorized, "unknown or rotated SDK key")
	}
	if needServer && k.Kind != domain.ServerSideKey {
		return access.SDKKey{}, nil, domain.Errorf(domain.EForbidden, "this endpoint needs a server-side SDK key; client-side keys get pre-evaluated results only")
	}
	if s.limiter != nil {
		if wait, ok := s.limiter.Allow(key, time.Now()); !ok {
			c.Response().Header().Set("Retry-After", httpapi.RetryAfter(wait))
			return access.SDKKey{}, nil, domain.Errorf(domain.ERateLimited, "rate limit of this SDK key reached; retry later")
		}
	}
	snap := s.snaps.snapshotOf(envID{k.Project, k.Environment})
	if snap == nil {
		return access.SDKKey{}, nil, domain.Errorf(domain.EUnavailable, "the environment's ruleset is not loaded yet; retry shortly")
	}
	return k, snap, nil
}
