package platform

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/services/postgres"
	"github.com/vexil-flags/vexil/services/sdkapi"
)

// check is the state of one dependency in /readyz.
type check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// ops serves /healthz (the process is alive), /readyz (its dependencies answer and the schema is
// migrated) and /metrics (Prometheus).
type ops struct {
	pool        *pgxpool.Pool
	redis       *redis.Client
	databaseURL string
	reg         *prometheus.Registry
	gatherer    prometheus.Gatherer
	snapshots   *sdkapi.Snapshots // nil unless the api role runs here
	storage     *storageCheck     // TimescaleDB or plain PostgreSQL, and advice

	mu         sync.Mutex
	migrations check // cached: the version only changes when someone migrates
	checkedAt  time.Time
}

func (o *ops) register(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", o.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.gatherer, promhttp.HandlerOpts{})))
}

func (o *ops) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks := map[string]check{}
	ready := true
	if err := o.pool.Ping(ctx); err != nil {
		checks["database"] = check{Detail: err.Error()}
		ready = false
	} else {
		checks["database"] = check{OK: true}
		checks["migrations"] = o.migrationState()
		ready = ready && checks["migrations"].OK
		if st, ok := o.storage.state(ctx); ok {
			checks["storage"] = st
		}
	}
	if err := o.redis.Ping(ctx).Err(); err != nil {
		checks["redis"] = check{Detail: err.Error()}
		ready = false
	} else {
		checks["redis"] = check{OK: true}
	}
	status := http.StatusOK
	state := "ready"
	if o.snapshots != nil {
		h := o.snapshots.Health()
		checks["snapshots"] = check{OK: h.Environments > 0 || h.Degraded == "", Detail: h.Degraded}
	}
	switch {
	case ready:
	case o.snapshots != nil && o.snapshots.Health().Environments > 0:
		// The api role keeps evaluating from memory: stay in the load balancer, say degraded.
		state = "degraded"
	default:
		status, state = http.StatusServiceUnavailable, "not ready"
	}
	return c.JSON(status, map[string]any{"status": state, "checks": checks})
}

// migrationState reports whether the database is at the latest embedded migration.
func (o *ops) migrationState() check {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.migrations.OK && time.Since(o.checkedAt) < time.Minute {
		return o.migrations
	}
	m, err := postgres.NewMigrator(o.databaseURL)
	if err != nil {
		return check{Detail: err.Error()}
	}
	defer m.Close()
	v, dirty, err := m.Version()
	latest := postgres.LatestMigration()
	switch {
	case err != nil:
		o.migrations = check{Detail: err.Error()}
	case dirty:
		o.migrations = check{Detail: "the last migration failed halfway (dirty); fix it and run vexil migrate force"}
	case v < latest:
		o.migrations = check{Detail: "database schema is behind: run vexil migrate up"}
	default:
		o.migrations = check{OK: true}
	}
	o.checkedAt = time.Now()
	return o.migrations
}
