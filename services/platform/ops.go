package platform

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
)

// check is the state of one dependency in /readyz. It names the dependency's state in words an
// operator acts on and never carries a driver's error text: that can hold the user, database
// name, host and port (it is logged instead, once per change of state).
type check struct {
	OK     bool   `json:"ok"`
	State  string `json:"state"` // up, down, behind, degraded, ...
	Detail string `json:"detail,omitempty"`
	// Warning is a risk that does not make the process unready (Redis without persistence).
	Warning string `json:"warning,omitempty"`
}

// Dependency states of /readyz.
const (
	stateUp       = "up"
	stateDown     = "down"
	stateBehind   = "behind"
	stateDegraded = "degraded"
	stateStarting = "starting"
)

// readinessCheck is one entry of /readyz: a name and how to probe it. Each probe gets the
// request's context with a deadline and the results of the entries before it (the migrations
// are only read when the database answers); a nil result is not shown.
type readinessCheck struct {
	name     string
	required bool // a failure makes the process not ready (else it only shows)
	probe    func(ctx context.Context, before map[string]check) *check
}

// ops serves /healthz (the process is alive), /readyz (its dependencies answer and the schema is
// migrated) and /metrics (Prometheus).
type ops struct {
	pool        *pgxpool.Pool
	redis       *redis.Client
	databaseURL string
	gatherer    prometheus.Gatherer
	snapshots   *sdkapi.Snapshots // nil unless the api role runs here
	starting    func() string     // why the process is not ready yet although it runs ("" once it is)
	log         *slog.Logger
	// metricsToken, when set, is required as a bearer token by /metrics.
	metricsToken string
	storage      *storageCheck // TimescaleDB or plain PostgreSQL, and advice
	jobs         *jobsCheck    // TimescaleDB jobs and who refreshes the rollups

	mu         sync.Mutex
	migrations check // cached: the version only changes when someone migrates
	checkedAt  time.Time

	stateMu   sync.Mutex
	lastState map[string]string // per check, to log a change of state once

	// Redis persistence, cached briefly: probes come every few seconds, settings rarely change.
	persistenceMu        sync.Mutex
	persistenceWarning   string
	persistenceCheckedAt time.Time
}

func (o *ops) register(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", o.readyz)
	metrics := echo.WrapHandler(promhttp.HandlerFor(o.gatherer, promhttp.HandlerOpts{}))
	if o.metricsToken != "" {
		metrics = requireBearer(o.metricsToken, metrics)
	}
	e.GET("/metrics", metrics)
}

// requireBearer lets only requests with Authorization: Bearer token through. The comparison
// takes the same time whatever the guess.
func requireBearer(token string, next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(token))
	return func(c echo.Context) error {
		secret, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(secret)))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
			return domain.Errorf(domain.EUnauthorized, "/metrics requires Authorization: Bearer <VEXIL_METRICS_TOKEN>")
		}
		return next(c)
	}
}

// checks are the entries of /readyz, in order. Add a dependency or a warning here.
func (o *ops) checks() []readinessCheck {
	list := []readinessCheck{
		{name: "database", required: true, probe: func(ctx context.Context, _ map[string]check) *check {
			if err := o.pool.Ping(ctx); err != nil {
				o.logChange("database", stateDown, err)
				return &check{State: stateDown, Detail: "PostgreSQL does not answer"}
			}
			o.logChange("database", stateUp, nil)
			return &check{OK: true, State: stateUp}
		}},
		{name: "migrations", required: true, probe: func(_ context.Context, before map[string]check) *check {
			if !before["database"].OK {
				return nil // unknown while the database is down
			}
			m := o.migrationState()
			return &m
		}},
		{name: "storage", probe: func(ctx context.Context, before map[string]check) *check {
			if !before["database"].OK {
				return nil
			}
			st, ok := o.storage.state(ctx)
			if !ok {
				return nil
			}
			st.State = stateUp
			return &st
		}},
		{name: "timescaledb_jobs", probe: func(ctx context.Context, before map[string]check) *check {
			if !before["database"].OK {
				return nil
			}
			return o.jobs.state(ctx)
		}},
		{name: "redis", required: true, probe: func(ctx context.Context, _ map[string]check) *check {
			if err := o.redis.Ping(ctx).Err(); err != nil {
				o.logChange("redis", stateDown, err)
				return &check{State: stateDown, Detail: "Redis does not answer"}
			}
			o.logChange("redis", stateUp, nil)
			return &check{OK: true, State: stateUp, Warning: o.redisPersistenceWarning(ctx)}
		}},
		{name: "startup", required: true, probe: func(context.Context, map[string]check) *check {
			if o.starting == nil || o.starting() == "" {
				return nil
			}
			return &check{State: stateStarting, Detail: o.starting()}
		}},
	}
	if o.snapshots != nil {
		list = append(list, readinessCheck{name: "snapshots", probe: func(context.Context, map[string]check) *check {
			h := o.snapshots.Health()
			c := check{OK: h.Environments > 0 || h.Degraded == "", State: stateUp}
			if h.Degraded != "" {
				// The refresh error is a driver's text (it can name the database's address and
				// user): the log has it, /readyz says what it means.
				o.logChange("snapshots", stateDegraded, errors.New(h.Degraded))
				c.State = stateDegraded
				c.Detail = "serving the last snapshot: the last refresh from the database failed"
				if !h.FreshAt.IsZero() {
					c.Detail += "; fresh at " + h.FreshAt.Format(time.RFC3339)
				}
			} else {
				o.logChange("snapshots", stateUp, nil)
			}
			return &c
		}})
	}
	return list
}

func (o *ops) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks := map[string]check{}
	ready := true
	for _, rc := range o.checks() {
		res := rc.probe(ctx, checks)
		if res == nil {
			continue
		}
		checks[rc.name] = *res
		if rc.required && !res.OK {
			ready = false
		}
	}
	status := http.StatusOK
	state := "ready"
	switch {
	case checks["startup"].State == stateStarting:
		// Still setting up (e.g. seeding the demo): no traffic yet, whatever the dependencies say.
		status, state = http.StatusServiceUnavailable, stateStarting
	case ready:
	case o.snapshots != nil && o.snapshots.Health().Environments > 0:
		// The api role keeps evaluating from memory: stay in the load balancer, say degraded.
		state = "degraded"
	default:
		status, state = http.StatusServiceUnavailable, "not ready"
	}
	return c.JSON(status, map[string]any{"status": state, "checks": checks})
}

// logChange logs a dependency's state when it changes, with the driver's error (which may name
// the host and user: it goes to the operator's log, not to /readyz).
func (o *ops) logChange(name, state string, err error) {
	o.stateMu.Lock()
	if o.lastState == nil {
		o.lastState = map[string]string{}
	}
	prev := o.lastState[name]
	o.lastState[name] = state
	o.stateMu.Unlock()
	if prev == state || o.log == nil || (prev == "" && state == stateUp) {
		return
	}
	if err != nil {
		o.log.Warn("readiness: dependency is down", "dependency", name, "err", err)
		return
	}
	o.log.Info("readiness: dependency is back", "dependency", name)
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
		o.logChange("migrations", stateDown, err)
		return check{State: stateDown, Detail: "the migration version could not be read"}
	}
	defer m.Close()
	v, dirty, err := m.Version()
	latest := postgres.LatestMigration()
	switch {
	case err != nil:
		o.logChange("migrations", stateDown, err)
		o.migrations = check{State: stateDown, Detail: "the migration version could not be read"}
	case dirty:
		o.migrations = check{State: stateBehind, Detail: "the last migration failed halfway (dirty); fix it and run vexil migrate force"}
	case v < latest:
		o.migrations = check{State: stateBehind, Detail: "database schema is behind: run vexil migrate up"}
	default:
		o.migrations = check{OK: true, State: stateUp}
	}
	o.checkedAt = time.Now()
	return o.migrations
}

// redisPersistenceWarning says what a Redis restart would lose of what was acknowledged (README,
// Operations: Redis persistence), or "" when Redis persists with AOF. A Redis without
// persistence still serves: the process stays ready, with a warning.
func (o *ops) redisPersistenceWarning(ctx context.Context) string {
	o.persistenceMu.Lock()
	defer o.persistenceMu.Unlock()
	if !o.persistenceCheckedAt.IsZero() && time.Since(o.persistenceCheckedAt) < persistenceCheckEvery {
		return o.persistenceWarning
	}
	p, err := redisstream.InspectPersistence(ctx, o.redis)
	if err != nil {
		o.persistenceWarning = "Redis persistence could not be checked: " + err.Error()
	} else {
		o.persistenceWarning = p.Warning()
	}
	o.persistenceCheckedAt = time.Now()
	return o.persistenceWarning
}

const persistenceCheckEvery = 30 * time.Second
