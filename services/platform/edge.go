package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/edge"
	"github.com/vexil-flags/vexil/services/roles/ingest"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
)

// Edge is a running edge process (vexil serve --roles edge): the SDK API served from a core's
// mirror, with neither PostgreSQL nor Redis (services/roles/edge, docs/edge.md).
type Edge struct {
	Config *config.Config
	Log    *slog.Logger
	// Addr is the address the HTTP server listens on.
	Addr string
	Edge *edge.Edge
	SDK  *sdkapi.Server

	echo   *echo.Echo
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

// StartEdge starts an edge: it serves at once from its snapshot file if there is one, and follows
// the core in the background (it keeps serving, and accepting events into its spool, while the
// core is down). Callers must Close it.
func StartEdge(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Edge, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ed, err := edge.New(edge.Config{Upstream: cfg.Upstream, Token: cfg.EdgeToken, Dir: cfg.EdgeDir,
		SpoolMaxBytes: cfg.EdgeSpoolMaxBytes, Limits: ingest.Limits{MaxBatch: cfg.EventsMaxBatch,
			MaxBodyBytes: cfg.EventsMaxBodyBytes, MaxAge: cfg.EventsMaxAge}, StaleAfter: 3 * cfg.SSEHeartbeat,
		Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	snaps := sdkapi.NewSnapshotsFromSource(ed, log, reg, ed.CountSink())
	snaps.LimitFlagSeries(cfg.MetricsFlagSeries)
	ingest := ed.Ingestor()
	var exposures *sdkapi.ExposureOptions
	if cfg.ServerExposures {
		exposures = &sdkapi.ExposureOptions{Publish: ingest.Publish, Disabled: ed.ExposuresOff, Refresh: cfg.ReconcileInterval,
			FlushInterval: cfg.ServerExposuresFlushInterval, MaxPending: cfg.ServerExposuresMaxPending}
	}
	sdk := sdkapi.New(snaps, log, reg, sdkapi.Options{MaxContextBytes: cfg.SDKMaxContextBytes,
		RateLimit: cfg.SDKRateLimit, Heartbeat: cfg.SSEHeartbeat, Events: ingest, Exposures: exposures})
	ed.OnChange(sdk.Resync)
	if ed.Health().Serving {
		// The snapshot file of an earlier run: serve it now, whatever the core says.
		if err := snaps.Load(ctx); err != nil {
			log.Warn("edge: the snapshot file could not be served", "err", err)
		}
	}

	runCtx, cancel := context.WithCancel(context.Background())
	p := &Edge{Config: cfg, Log: log, Edge: ed, SDK: sdk, cancel: cancel, errs: make(chan error, 4)}
	p.run("edge-api", func() error {
		return sdk.Run(runCtx, sdkapi.FeedOptions{Reconcile: cfg.ReconcileInterval})
	})
	p.run("edge-follow", func() error { return ed.Run(runCtx) })

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	timeouts := HTTPTimeouts(cfg)
	e.Use(append(httpapi.Middleware(log, httpapi.NewMetrics(reg), timeouts, IsStream), corsOf(cfg))...)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", func(c echo.Context) error {
		h := ed.Health()
		// Serving from a mirror is ready, even with the core down (degraded): evaluation and
		// event intake go on. Without any mirror nothing can be answered.
		status, state := http.StatusOK, "ready"
		switch {
		case !h.Serving:
			status, state = http.StatusServiceUnavailable, "not ready"
		case h.Upstream != "up":
			state = "degraded"
		}
		return c.JSON(status, map[string]any{"status": state, "edge": h, "snapshots": snaps.Health()})
	})
	metrics := echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.MetricsToken != "" {
		metrics = requireBearer(cfg.MetricsToken, metrics)
	}
	e.GET("/metrics", metrics)
	sdk.Register(e)
	p.echo = e

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("platform: listen on %s: %w", cfg.HTTPAddr, err)
	}
	p.Addr = ln.Addr().String()
	srv := httpapi.NewServer(e, timeouts)
	e.Server = srv
	p.run("http", func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("platform: http server: %w", err)
		}
		return nil
	})
	log.Info("vexil edge started", "addr", p.Addr, "upstream", cfg.Upstream, "dir", cfg.EdgeDir)
	return p, nil
}

func (p *Edge) run(name string, fn func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := fn(); err != nil {
			p.Log.Error("role stopped", "role", name, "err", err)
			p.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// Wait blocks until ctx ends or a part fails.
func (p *Edge) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-p.errs:
		return err
	}
}

// Close stops the HTTP server, then the follower and forwarder (spooled events stay on disk for
// the next start).
func (p *Edge) Close() error {
	p.SDK.StopStreams()
	if p.echo != nil && p.echo.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = p.echo.Server.Shutdown(ctx)
		cancel()
	}
	p.cancel()
	p.wg.Wait()
	return nil
}
