// Package sdkapi is the `api` role: the SDK-facing API. It holds every environment's compiled
// ruleset in memory and evaluates without any database or Redis round trip: OFREP single and bulk
// evaluation, the server-side ruleset download, and an SSE stream of changes.
//
// Snapshots are loaded from the rulesets read model at start, refreshed when the domain stream
// says a project changed (every replica reads the stream in fan-out), and reconciled by version
// on a timer, so a missed notification only delays a change. If PostgreSQL or Redis is down,
// evaluation keeps serving the last snapshot and /readyz reports the degraded state.
package sdkapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/access"
)

// envID names an environment of a project.
type envID struct{ project, environment string }

// snapshot is one environment's ruleset as served: immutable once published.
type snapshot struct {
	id       envID
	version  int64
	compiled *evaluation.Compiled
	ruleset  []byte // the JSON server-side SDKs download
	etag     string // quoted version
	loadedAt time.Time
	counts   *counters
	values   map[string][][]byte // flag key -> JSON of each variation's value, by index
	client   clientView          // what client-side keys can observe; their ETags derive from it
	// configs are the flags in the compiled ruleset's evaluation order (evaluation.Compiled.Index),
	// so that a single evaluation looks its flag up once; answers caches their OFREP answers.
	configs []*domain.FlagConfig
	answers answerCache
}

// newSnapshot prepares what serving an environment needs beyond the compiled ruleset: the JSON
// of the ruleset download, and the JSON of every variation value, encoded once here rather than
// on every evaluation.
func newSnapshot(id envID, rs *domain.Ruleset, compiled *evaluation.Compiled) (*snapshot, error) {
	body, err := json.Marshal(rs)
	if err != nil {
		return nil, fmt.Errorf("sdkapi: marshal %s/%s: %w", id.project, id.environment, err)
	}
	values := make(map[string][][]byte, len(rs.Flags))
	for key, f := range rs.Flags {
		vs := make([][]byte, len(f.Variations))
		for i, v := range f.Variations {
			if vs[i], err = json.Marshal(v.Value); err != nil {
				return nil, fmt.Errorf("sdkapi: marshal %s/%s flag %s variation %s: %w", id.project, id.environment, key, v.Key, err)
			}
		}
		values[key] = vs
	}
	client, err := clientViewOf(rs)
	if err != nil {
		return nil, err
	}
	counts := newCounters(rs)
	var configs []*domain.FlagConfig
	if compiled != nil {
		keys := compiled.Flags()
		counts.inOrder(keys)
		configs = make([]*domain.FlagConfig, len(keys))
		for i, k := range keys {
			configs[i] = rs.Flags[k]
		}
	}
	return &snapshot{id: id, version: rs.Version, compiled: compiled, ruleset: body, values: values, client: client,
		etag: strconv.Quote(strconv.FormatInt(rs.Version, 10)), loadedAt: time.Now(), counts: counts,
		configs: configs, answers: newAnswerCache(len(configs))}, nil
}

// valueJSON is the JSON of the value r served.
func (s *snapshot) valueJSON(r *evaluation.Result) []byte {
	if vs := s.values[r.FlagKey]; r.VariationIndex >= 0 && r.VariationIndex < len(vs) {
		return vs[r.VariationIndex]
	}
	b, err := json.Marshal(r.Value)
	if err != nil {
		return []byte("null")
	}
	return b
}

// environment holds the current snapshot of one environment and its SSE subscribers.
type environment struct {
	current atomic.Pointer[snapshot]
	hub     *hub
}

// Snapshots is the in-memory state of the api role.
type Snapshots struct {
	source Source
	pool   *pgxpool.Pool // nil unless the source is the read models (waits for projections)
	log    *slog.Logger

	mu   sync.RWMutex // guards envs (the map, not the snapshots, which are atomic)
	envs map[envID]*environment

	keys atomic.Pointer[map[string]access.SDKKey] // replaced whole on reload

	reloadMu   sync.Mutex // one reload at a time; a reload is idempotent by version
	lastOK     atomic.Int64
	lastErr    atomic.Pointer[string]
	counterLog *counterFlusher
	// loads counts rulesets compiled and installed (start-up, changes, reconciliation): a
	// deployment's reload rate, and how a test knows the api role has settled.
	loads prometheus.Counter

	mirrorMu   sync.Mutex // guards the change signal of edges' mirror streams (mirror.go)
	mirrorGen  uint64
	mirrorNext chan struct{}
}

// NewSnapshots returns empty snapshots reading the read models; call Load before serving.
func NewSnapshots(pool *pgxpool.Pool, log *slog.Logger, flusher *counterFlusher) *Snapshots {
	s := NewSnapshotsFrom(PostgresSource{Pool: pool}, log, flusher)
	s.pool = pool
	return s
}

// NewSnapshotsFrom returns empty snapshots reading source; call Load before serving.
func NewSnapshotsFrom(source Source, log *slog.Logger, flusher *counterFlusher) *Snapshots {
	s := &Snapshots{source: source, log: log, envs: map[envID]*environment{}, counterLog: flusher,
		loads: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_sdk_ruleset_loads_total",
			Help: "Environment rulesets compiled and installed in memory (start-up, changes, reconciliation)."})}
	empty := map[string]access.SDKKey{}
	s.keys.Store(&empty)
	return s
}

// Load reads every environment and SDK key; it is the start-up load and the reconciliation.
func (s *Snapshots) Load(ctx context.Context) error {
	versions, err := s.source.Versions(ctx, "")
	if err != nil {
		s.fail(err)
		return err
	}
	if err := s.reloadKeys(ctx); err != nil {
		s.fail(err)
		return err
	}
	for _, v := range versions {
		if err := s.refresh(ctx, envID{v.Project, v.Environment}, v.Version); err != nil {
			s.fail(err)
			return err
		}
	}
	s.ok()
	return nil
}

// RefreshProject reloads the environments of one project whose version moved, and its keys.
func (s *Snapshots) RefreshProject(ctx context.Context, project string, keysToo bool) error {
	list, err := s.source.Versions(ctx, project)
	if err != nil {
		s.fail(err)
		return err
	}
	if keysToo {
		if err := s.reloadKeys(ctx); err != nil {
			s.fail(err)
			return err
		}
	}
	for _, e := range list {
		if err := s.refresh(ctx, envID{e.Project, e.Environment}, e.Version); err != nil {
			s.fail(err)
			return err
		}
	}
	s.ok()
	return nil
}

// refresh loads an environment if the known version differs from the loaded one.
func (s *Snapshots) refresh(ctx context.Context, id envID, version int64) error {
	env := s.environment(id, true)
	if cur := env.current.Load(); cur != nil && cur.version == version {
		return nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if cur := env.current.Load(); cur != nil && cur.version == version {
		return nil
	}
	rs, err := s.source.Ruleset(ctx, id.project, id.environment)
	if err != nil {
		return fmt.Errorf("sdkapi: load %s/%s: %w", id.project, id.environment, err)
	}
	return s.install(env, id, rs)
}

// install compiles rs, makes it the environment's current snapshot and tells its SSE subscribers.
func (s *Snapshots) install(env *environment, id envID, rs *domain.Ruleset) error {
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		return fmt.Errorf("sdkapi: compile %s/%s: %w", id.project, id.environment, err)
	}
	for _, p := range compiled.Problems() {
		s.log.Warn("ruleset problem: the flag answers an error until fixed", "project", id.project,
			"environment", id.environment, "problem", p.Error())
	}
	next, err := newSnapshot(id, rs, compiled)
	if err != nil {
		return err
	}
	var left *counters
	if cur := env.current.Load(); cur != nil { // reloads of an environment are serialized (reloadMu)
		left = next.counts.carryOver(cur.counts)
	}
	prev := env.current.Swap(next)
	s.loads.Inc()
	s.counterLog.retire(id, left) // flushed once more, not lost
	env.hub.publish(changeOf(prev, next))
	s.mirrorChanged()
	return nil
}

// environment returns the holder of id, creating it if asked.
func (s *Snapshots) environment(id envID, create bool) *environment {
	s.mu.RLock()
	env := s.envs[id]
	s.mu.RUnlock()
	if env != nil || !create {
		return env
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if env = s.envs[id]; env == nil {
		env = &environment{hub: newHub()}
		s.envs[id] = env
	}
	return env
}

// snapshotOf returns the current snapshot of an environment, nil if none is loaded.
func (s *Snapshots) snapshotOf(id envID) *snapshot {
	env := s.environment(id, false)
	if env == nil {
		return nil
	}
	return env.current.Load()
}

// all returns every current snapshot.
func (s *Snapshots) all() []*snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*snapshot, 0, len(s.envs))
	for _, e := range s.envs {
		if cur := e.current.Load(); cur != nil {
			out = append(out, cur)
		}
	}
	return out
}

func (s *Snapshots) reloadKeys(ctx context.Context) error {
	keys, err := s.source.Keys(ctx)
	if err != nil {
		return err
	}
	s.setKeys(keys)
	return nil
}

// setKeys makes keys the valid SDK keys, then ends every SSE stream opened with a key that is no
// longer valid for its environment: rotated or revoked, or its environment or project gone.
// (A stream that authorized with the previous keys and subscribes after the sweep checks again
// once subscribed; see stream.)
func (s *Snapshots) setKeys(keys map[string]access.SDKKey) {
	if prev := s.keys.Swap(&keys); !sameKeys(*prev, keys) {
		s.mirrorChanged()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, env := range s.envs {
		env.hub.closeIf(func(key string) bool { return !keyServes(keys, key, id) })
	}
}

// keyServes reports whether key is valid for environment id.
func keyServes(keys map[string]access.SDKKey, key string, id envID) bool {
	k, ok := keys[key]
	return ok && k.Project == id.project && k.Environment == id.environment
}

// lookupKey resolves an SDK key from memory.
func (s *Snapshots) lookupKey(key string) (access.SDKKey, bool) {
	k, ok := (*s.keys.Load())[key]
	return k, ok
}

func (s *Snapshots) ok() {
	s.lastOK.Store(time.Now().UnixNano())
	s.lastErr.Store(nil)
}

func (s *Snapshots) fail(err error) {
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// Health describes the snapshots for /readyz: how many environments are served, when they were
// last known fresh, and the last refresh error if the most recent refresh failed (degraded).
type Health struct {
	Environments int       `json:"environments"`
	FreshAt      time.Time `json:"fresh_at"`
	Degraded     string    `json:"degraded,omitempty"`
}

// Health reports the state of the snapshots.
func (s *Snapshots) Health() Health {
	h := Health{Environments: len(s.all())}
	if t := s.lastOK.Load(); t > 0 {
		h.FreshAt = time.Unix(0, t).UTC()
	}
	if e := s.lastErr.Load(); e != nil {
		h.Degraded = "serving the last snapshot: " + *e
	}
	return h
}

// changeOf describes what changed between two snapshots of an environment, for SSE.
func changeOf(prev, next *snapshot) change {
	c := change{version: next.version, etag: next.etag, clientETag: next.clientETag(), at: next.loadedAt}
	if prev == nil {
		return c
	}
	c.from = prev.version
	c.clientFlags = next.client.changedFor(prev.client)
	for _, key := range next.compiled.Flags() {
		nf, _ := next.compiled.Flag(key)
		pf, ok := prev.compiled.Flag(key)
		if !ok || pf.Version != nf.Version {
			c.flags = append(c.flags, key)
		}
	}
	for _, key := range prev.compiled.Flags() {
		if _, ok := next.compiled.Flag(key); !ok {
			c.flags = append(c.flags, key)
		}
	}
	slices.Sort(c.flags)
	return c
}

// clientETag is the quoted ETag of the client view, which client-side keys' streams carry.
func (s *snapshot) clientETag() string { return `"c` + s.client.etag + `"` }

var _ = domain.ClientSideKey
