package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
)

// server is an HTTP server on a loopback port.
type server struct {
	addr string
	srv  *http.Server
}

// serve starts h on 127.0.0.1 with the platform's server settings.
func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{addr: ln.Addr().String(), srv: httpapi.NewServer(h, defaultTimeouts())}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("server stopped", "addr", s.addr, "err", err)
		}
	}()
	return s, nil
}

func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
}

// defaultTimeouts are the HTTP limits of a platform started without configuration.
func defaultTimeouts() httpapi.Timeouts {
	cfg, err := config.Parse("load", nil, func(string) (string, bool) { return "", false })
	if err != nil {
		panic("load: the default configuration does not parse: " + err.Error())
	}
	return platform.HTTPTimeouts(cfg)
}

// bareBody is the small JSON body of the reference handler, shaped like an OFREP answer.
type bareBody struct {
	Key     string `json:"key"`
	Value   bool   `json:"value"`
	Reason  string `json:"reason"`
	Variant string `json:"variant"`
}

// bareEcho is the reference: a bare echo handler (no middleware) answering a small JSON body.
func bareEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	h := func(c echo.Context) error {
		return c.JSON(http.StatusOK, bareBody{Key: "x", Value: true, Reason: "STATIC", Variant: "on"})
	}
	e.POST("/bare", h)
	e.GET("/bare", h)
	return e
}

// sdkAPI is the api role as services/platform wires it: snapshots loaded from the read model,
// the feed running (reconciliation and count flushes), echo with the platform's error handler
// and middleware, and the SDK routes.
type sdkAPI struct {
	snaps  *sdkapi.Snapshots
	reg    *prometheus.Registry
	server *sdkapi.Server
	echo   *echo.Echo
	cancel context.CancelFunc
	done   chan struct{}
}

func newSDKAPI(ctx context.Context, d *database, log *slog.Logger, heartbeat time.Duration) (*sdkAPI, error) {
	reg := prometheus.NewRegistry()
	snaps := sdkapi.NewSnapshotsFor(d.pool, log, reg, nil)
	if err := snaps.Load(ctx); err != nil {
		return nil, err
	}
	srv := sdkapi.New(snaps, log, reg, sdkapi.Options{MaxContextBytes: 64 << 10, Heartbeat: heartbeat})
	runCtx, cancel := context.WithCancel(context.Background())
	a := &sdkAPI{snaps: snaps, reg: reg, server: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		_ = srv.Run(runCtx, sdkapi.FeedOptions{Reconcile: 10 * time.Second})
	}()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Use(httpapi.Middleware(log, httpapi.NewMetrics(reg), defaultTimeouts(), platform.IsStream)...)
	srv.Register(e)
	a.echo = e
	return a, nil
}

func (a *sdkAPI) stop() {
	a.cancel()
	<-a.done
}
