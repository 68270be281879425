// Package platform is Vexil's composition root: it reads the configuration, opens PostgreSQL and
// Redis, runs migrations, wires every role (api, console, projector, experiment, relay) onto one
// process, and implements the command line (serve, migrate, seed). main stays a one-liner around
// Main so end-to-end tests start the real program.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/changerequests"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/projections/experiments"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/adapters/leader"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/analysis"
	"github.com/vexil-flags/vexil/services/roles/console"
	"github.com/vexil-flags/vexil/services/roles/ingest"
	"github.com/vexil-flags/vexil/services/roles/projector"
	"github.com/vexil-flags/vexil/services/roles/relay"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// ReadModels are the asynchronous projections, in the order the projector applies them.
func ReadModels() []projections.Projection {
	return []projections.Projection{access.Projection{}, catalog.Projection{}, rulesets.Projection{}, audit.Projection{},
		experiments.Projection{}, delivery.Projection{}, changerequests.Projection{}}
}

// Platform is a running Vexil process.
type Platform struct {
	Config *config.Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	Redis  *redis.Client
	Store  *postgres.EventStore
	App    *app.Application
	// Addr is the address the HTTP server listens on (useful when configured with port 0).
	Addr string
	// checkpoints is fired by the checkpoint listener Start runs; the application layer waits on it.
	checkpoints *postgres.Signal
	// Analyzer runs experiment analyses (on a schedule in the experiment role, on demand in the
	// console role).
	Analyzer *analysis.Analyzer
	// Scheduler applies due progressive-delivery work (experiment role); nil when the role does not
	// run here.
	Scheduler *scheduler.Scheduler
	// SDK is the api role's server, nil when the role does not run here.
	SDK *sdkapi.Server
	// AdminToken is set when this start generated the bootstrap admin token.
	AdminToken string

	echo          *echo.Echo
	webhookWorker *webhooks.Worker // nil when the projector role does not run here
	listener      net.Listener
	runCtx        context.Context // ends when the platform closes: what the roles run under
	cancel        context.CancelFunc
	// starting says why the process is not ready yet although its roles run (e.g. the demo is
	// being seeded); /readyz answers 503 until it is cleared.
	starting atomic.Pointer[string]
	wg       sync.WaitGroup
	errs     chan error
}

// Open connects to the database and Redis and runs migrations (if configured), without starting
// any role. Callers must Close it.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Platform, error) {
	if err := postgres.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if cfg.Migrate {
		if err := migrateUp(cfg.DatabaseURL); err != nil {
			return nil, err
		}
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	// Subscriptions log Redis incidents once; go-redis would log every failed dial.
	redisstream.RouteClientLogs(log)
	rdb, err := redisstream.NewClient(cfg.RedisURL)
	if err != nil {
		pool.Close()
		return nil, err
	}
	store, err := postgres.NewEventStore(pool, postgres.WithInlineProjections(access.Projection{}), postgres.WithLogger(log))
	if err != nil {
		pool.Close()
		rdb.Close()
		return nil, err
	}
	checkpoints := postgres.NewSignal()
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: log, ConsistencyWait: cfg.ConsistencyWait, Checkpoints: checkpoints})
	if err != nil {
		pool.Close()
		rdb.Close()
		return nil, err
	}
	return &Platform{Config: cfg, Log: log, Pool: pool, Redis: rdb, Store: store, App: a, checkpoints: checkpoints,
		Analyzer: analysis.NewAnalyzer(pool, a.Queries, log), errs: make(chan error, 8)}, nil
}

func migrateUp(databaseURL string) error {
	m, err := postgres.NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up()
}

// Start bootstraps the admin token and starts the configured roles and the HTTP server. It
// returns once the server listens.
func (p *Platform) Start(ctx context.Context) error {
	cfg := p.Config
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := newStreamMetrics(reg)

	runCtx, cancel := context.WithCancel(context.Background())
	p.runCtx, p.cancel = runCtx, cancel
	bus := redisstream.Config{URL: cfg.RedisURL, Prefix: cfg.StreamPrefix, Logger: p.Log}
	telemetryMetrics := ingest.NewMetrics(reg)

	// The projector's checkpoint notifications end the writes' read-your-writes waits (app.Config).
	p.run("checkpoint listener", func() error {
		postgres.Listen(runCtx, p.Pool, postgres.NotifyCheckpoint, p.checkpoints, p.Log)
		return nil
	})
	if cfg.Has(config.RoleRelay) {
		pub, err := redisstream.NewPublisher(bus)
		if err != nil {
			cancel()
			return err
		}
		r, err := relay.New(relay.Config{Pool: p.Pool, Publisher: pub, Topic: bus.DomainStream(),
			Metrics: metrics, Logger: p.Log})
		if err != nil {
			cancel()
			return err
		}
		p.run("relay", func() error { return r.Run(runCtx) })
	}
	var sdk *sdkapi.Server
	var snaps *sdkapi.Snapshots
	if cfg.Has(config.RoleAPI) {
		// Telemetry ingest: POST /sdk/v1/events and the evaluation counters, to the telemetry stream.
		events, err := ingest.NewIngestor(ingest.IngestConfig{Bus: bus, MaxLag: cfg.TelemetryMaxLag,
			StreamMaxLen: cfg.TelemetryStreamMaxLen, Limits: ingest.Limits{MaxBatch: cfg.EventsMaxBatch,
				MaxBodyBytes: cfg.EventsMaxBodyBytes, MaxAge: cfg.EventsMaxAge}, Metrics: telemetryMetrics, Logger: p.Log})
		if err != nil {
			cancel()
			return err
		}
		snaps = sdkapi.NewSnapshotsFor(p.Pool, p.Log, reg, sdkapi.TelemetryCountSink(events))
		snaps.LimitFlagSeries(cfg.MetricsFlagSeries)
		if err := snaps.Load(ctx); err != nil {
			cancel()
			return fmt.Errorf("platform: load rulesets: %w", err)
		}
		var exposures *sdkapi.ExposureOptions
		if cfg.ServerExposures {
			pool := p.Pool
			exposures = &sdkapi.ExposureOptions{Publish: events.Publish,
				Disabled:      func(ctx context.Context) ([]string, error) { return catalog.ServerExposuresOff(ctx, pool) },
				Refresh:       cfg.ReconcileInterval,
				FlushInterval: cfg.ServerExposuresFlushInterval, MaxPending: cfg.ServerExposuresMaxPending}
		}
		sdk = sdkapi.New(snaps, p.Log, reg, sdkapi.Options{MaxContextBytes: cfg.SDKMaxContextBytes,
			RateLimit: cfg.SDKRateLimit, Heartbeat: cfg.SSEHeartbeat, Events: events, Exposures: exposures,
			EdgeAuth: edgeAuth(p.Pool), ExposuresOff: exposuresOff(p.Pool)})
		// After a Redis incident, notifications may be gone: reconcile with the database at once.
		fanout, err := redisstream.NewFanOutSubscriber(bus, redisstream.OnRecovered(func(context.Context) { sdk.Resync() }))
		if err != nil {
			cancel()
			return err
		}
		apiStopped := make(chan struct{})
		p.run("api", func() error {
			defer close(apiStopped)
			return sdk.Run(runCtx, sdkapi.FeedOptions{Subscriber: fanout, Topic: bus.DomainStream(), Reconcile: cfg.ReconcileInterval})
		})
		p.run("telemetry-ingest", func() error {
			err := events.Run(runCtx)
			<-apiStopped // the api role's last flush of evaluation counts goes through the ingestor
			return errors.Join(err, events.Close())
		})
	}
	if cfg.Has(config.RoleExperiment) {
		// Analysis runs once per installation: the experiment instances elect one through an
		// advisory lock, so two copies do not each write every analysis (services/adapters/leader).
		analysis, err := leader.New(leader.Config{ConnConfig: p.Pool.Config().ConnConfig, Name: "experiment-analysis",
			Retry: min(cfg.AnalysisInterval, 10*time.Second), Logger: p.Log})
		if err != nil {
			cancel()
			return err
		}
		p.run("experiment-analysis", func() error {
			return analysis.Run(runCtx, func(ctx context.Context) error { return p.Analyzer.Run(ctx, cfg.AnalysisInterval) })
		})
		// Progressive delivery: scheduled changes, rollout steps, auto-ops. One leader among the
		// experiment instances (advisory lock); command ids make each change happen once anyway.
		// Its commands do not wait for read models: nobody reads after them.
		schedApp, err := app.New(app.Config{Store: p.Store, Pool: p.Pool, Log: p.Log})
		if err != nil {
			cancel()
			return err
		}
		sched, err := scheduler.New(scheduler.Config{App: schedApp, Store: p.Store, Pool: p.Pool,
			Interval: cfg.SchedulerInterval, AutoOpsInterval: cfg.AutoOpsInterval, Logger: p.Log, Registerer: reg})
		if err != nil {
			cancel()
			return err
		}
		p.Scheduler = sched
		p.run("delivery-scheduler", func() error { return sched.Run(runCtx) })
	}
	if cfg.Has(config.RoleProjector) {
		// After a Redis incident (restart without data, flush, failover), notifications the
		// projector had not consumed may be gone: catch up from the event store.
		var runner *projector.Runner
		sub, err := redisstream.NewSubscriber(bus, bus.Group(projector.Role),
			redisstream.OnRecovered(func(ctx context.Context) { runner.StreamRecovered(ctx) }))
		if err != nil {
			cancel()
			return err
		}
		dead, err := redisstream.NewPublisher(bus)
		if err != nil {
			cancel()
			return err
		}
		runner, err = projector.New(projector.Config{Pool: p.Pool, Store: p.Store, Subscriber: sub,
			Topic: bus.DomainStream(), DeadLetter: dead, DeadLetterTopic: bus.DeadLetterStream(),
			Projections: projectorProjections(), Metrics: metrics, Logger: p.Log, OnApplied: onApplied(sdk)})
		if err != nil {
			cancel()
			return err
		}
		p.run("projector", func() error { return runner.Run(runCtx) })
		if err := p.startWebhookWorker(reg); err != nil {
			cancel()
			return err
		}

		// Telemetry projector: the telemetry stream into the event tables; rollup and policy upkeep.
		telemetryBus := bus
		telemetryBus.MaxIdleTime = cfg.TelemetryRedeliverAfter
		consumer, err := ingest.NewConsumer(ingest.ConsumerConfig{Pool: p.Pool, Bus: telemetryBus,
			Workers: cfg.TelemetryWorkers, GroupMessages: cfg.TelemetryGroupMessages, Metrics: telemetryMetrics, Logger: p.Log})
		if err != nil {
			cancel()
			return err
		}
		maintainer, err := ingest.NewMaintainer(ingest.MaintenanceConfig{Pool: p.Pool, Interval: cfg.TelemetryRefreshInterval,
			Policies: telemetry.Policies{ChunkInterval: cfg.TelemetryChunkInterval, CompressAfter: cfg.TelemetryCompressAfter,
				Retention: cfg.TelemetryRetention}, Metrics: telemetryMetrics, Logger: p.Log, RollupRefresh: cfg.RollupRefresh})
		if err != nil {
			cancel()
			return err
		}
		p.run("telemetry", func() error { return consumer.Run(runCtx) })
		p.run("telemetry-maintenance", func() error { return maintainer.Run(runCtx) })
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpapi.ErrorHandler(p.Log)
	timeouts := HTTPTimeouts(cfg)
	e.Use(append(httpapi.Middleware(p.Log, httpapi.NewMetrics(reg), timeouts, IsStream), corsOf(cfg))...)
	(&ops{pool: p.Pool, redis: p.Redis, databaseURL: cfg.DatabaseURL, gatherer: reg, snapshots: snaps,
		starting: p.startingReason, storage: &storageCheck{pool: p.Pool}, jobs: &jobsCheck{pool: p.Pool, refresh: cfg.RollupRefresh},
		log: p.Log, metricsToken: cfg.MetricsToken}).register(e)
	if sdk != nil {
		sdk.Register(e)
	}
	p.SDK = sdk
	if cfg.Has(config.RoleConsole) {
		hooks, err := webhooks.NewStore(p.Pool)
		if err != nil {
			cancel()
			return err
		}
		srv := console.NewServer(p.App, p.Log, cfg.MaxBodyBytes).WithAnalyzer(p.Analyzer).WithTriggerRateLimit(cfg.TriggerRateLimit).
			WithWebhooks(hooks, p.wakeWebhooks)
		srv.Register(e)
		srv.RegisterHooks(e) // public webhook triggers: their secret, no bearer token
		if err := registerWebConsole(e, p); err != nil {
			cancel()
			return err
		}
	}
	// After routing, before any handler: parameters of the management API and webhooks must be
	// text the database can store (the SDK API answers in OFREP's format and stores none).
	e.Use(httpapi.ValidInput("/api/", console.HooksPath))
	p.echo = e

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		cancel()
		return fmt.Errorf("platform: listen on %s: %w", cfg.HTTPAddr, err)
	}
	p.listener = ln
	p.Addr = ln.Addr().String()
	srv := httpapi.NewServer(e, timeouts)
	e.Server = srv
	p.run("http", func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("platform: http server: %w", err)
		}
		return nil
	})
	// After the roles start, so the token's read models are built while we wait for them.
	token, err := BootstrapAdminToken(ctx, p.App, p.Pool, cfg.AdminToken)
	if err != nil {
		return err
	}
	p.AdminToken = token
	logStorage(ctx, p.Log, p.Pool)
	st := p.describeStorage(ctx)
	p.Log.Info("vexil started", "addr", p.Addr, "roles", cfg.Roles, "stream_prefix", cfg.StreamPrefix,
		"storage", st.Mode, "postgresql", st.PostgreSQL, "timescaledb", st.TimescaleDB, "redis", st.Redis)
	return nil
}

// NotReadyUntil makes /readyz answer 503 with reason until Ready is called: for work that must
// finish after the roles start and before traffic should come (seeding the demo). Call it
// before Start.
func (p *Platform) NotReadyUntil(reason string) { p.starting.Store(&reason) }

// Ready ends NotReadyUntil.
func (p *Platform) Ready() { p.starting.Store(nil) }

func (p *Platform) startingReason() string {
	if r := p.starting.Load(); r != nil {
		return *r
	}
	return ""
}

// corsOf is the cross-origin policy: the SDK routes answer the configured origins (any, by
// default: client-side keys are public and made for browsers); the management API stays
// same-origin unless origins are configured for a console hosted elsewhere.
func corsOf(cfg *config.Config) echo.MiddlewareFunc {
	return httpapi.CORS(
		httpapi.CORSPolicy{Prefixes: []string{"/ofrep/v1/", "/sdk/v1/"}, Origins: cfg.SDKCORSOrigins,
			Methods: []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			Headers: []string{"Authorization", "Content-Type", "If-None-Match", "X-API-Key", "Last-Event-ID"},
			Expose:  []string{"ETag", "Retry-After", "X-Request-Id"}, MaxAge: cfg.CORSMaxAge},
		httpapi.CORSPolicy{Prefixes: []string{"/api/v1/"}, Origins: cfg.ConsoleCORSOrigins,
			Methods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions},
			Headers: []string{"Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Vexil-Reason"},
			Expose:  []string{"ETag", "Retry-After", "X-Request-Id", "Location", "Content-Disposition"}, MaxAge: cfg.CORSMaxAge},
	)
}

// HTTPTimeouts are the HTTP server's limits of cfg.
func HTTPTimeouts(cfg *config.Config) httpapi.Timeouts {
	return httpapi.Timeouts{ReadHeader: cfg.HTTPReadHeaderTimeout, Body: cfg.HTTPBodyTimeout,
		Write: cfg.HTTPWriteTimeout, Idle: cfg.HTTPIdleTimeout, MaxHeaderBytes: cfg.HTTPMaxHeaderBytes}
}

// IsStream tells the routes whose answers are long-lived streams: SSE, and audit exports
// (the whole filtered log, written as it is read).
func IsStream(c echo.Context) bool {
	return sdkapi.IsStream(c) || console.IsStream(c)
}

// onApplied lets the in-process projector tell the api role at once that read models moved.
func onApplied(sdk *sdkapi.Server) func(string, int64) {
	if sdk == nil {
		return nil
	}
	return sdk.Notify
}

// run starts a role in the background; its failure is reported by Wait.
func (p *Platform) run(name string, fn func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := fn(); err != nil {
			p.Log.Error("role stopped", "role", name, "err", err)
			p.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// Wait blocks until ctx ends or a role fails.
func (p *Platform) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-p.errs:
		return err
	}
}

// Close stops the HTTP server and every role, then closes the connections.
func (p *Platform) Close() error {
	if p.SDK != nil {
		p.SDK.StopStreams() // SSE connections never go idle: Shutdown would wait its whole deadline
	}
	if p.echo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = p.echo.Server.Shutdown(ctx)
		cancel()
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	p.Redis.Close()
	p.Pool.Close()
	return nil
}
