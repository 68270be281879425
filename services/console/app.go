// Package console is the management role: the application layer that turns requests into
// commands on aggregates (load the stream, fold, decide, append with optimistic concurrency), and
// the management REST API over it (/api/v1). The web console and automation use the same API.
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/postgres"
	"github.com/vexil-flags/vexil/services/projector"
)

// App runs management commands and queries.
type App struct {
	store *postgres.EventStore
	pool  *pgxpool.Pool
	log   *slog.Logger
	// wait bounds how long a write waits for the asynchronous read models to catch up, so a client
	// that writes and then lists sees its write. Zero disables waiting.
	wait time.Duration
}

// waitedProjections are the asynchronous read models a write waits for.
var waitedProjections = []string{catalog.Name, rulesets.Name, audit.Name}

// NewApp builds the application layer.
func NewApp(store *postgres.EventStore, pool *pgxpool.Pool, log *slog.Logger, wait time.Duration) (*App, error) {
	if store == nil || pool == nil || log == nil {
		return nil, fmt.Errorf("console: NewApp needs an event store, a pool and a logger")
	}
	return &App{store: store, pool: pool, log: log, wait: wait}, nil
}

// Pool exposes the database pool to read-model queries.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// load folds a stream; a stream with no events is ENotFound.
func (a *App) load(ctx context.Context, streamID, what string) (projections.Aggregate, int64, error) {
	events, err := a.store.Load(ctx, streamID)
	if err != nil {
		return nil, 0, err
	}
	if len(events) == 0 {
		return nil, 0, domain.Errorf(domain.ENotFound, "%s not found", what)
	}
	agg, err := projections.Fold(streamID, events)
	if err != nil {
		return nil, 0, err
	}
	return agg, events[len(events)-1].Version, nil
}

// LoadProject returns the current state of a project.
func (a *App) LoadProject(ctx context.Context, project string) (*domain.Project, error) {
	agg, _, err := a.load(ctx, domain.ProjectStream(project), fmt.Sprintf("project %q", project))
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Project), nil
}

// LoadFlag returns the current state of a flag.
func (a *App) LoadFlag(ctx context.Context, project, flag string) (*domain.Flag, error) {
	agg, _, err := a.load(ctx, domain.FlagStream(project, flag), fmt.Sprintf("flag %q in project %q", flag, project))
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Flag), nil
}

// LoadSegment returns the current state of a segment.
func (a *App) LoadSegment(ctx context.Context, project, segment string) (*domain.Segment, error) {
	agg, _, err := a.load(ctx, domain.SegmentStream(project, segment), fmt.Sprintf("segment %q in project %q", segment, project))
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Segment), nil
}

// Catalog gathers the reference data commands validate against: the project's environments,
// flags and segments. It must be current, not eventually consistent (a segment created a moment
// ago can be used at once, even while Redis or the projector is down), yet cheap for projects with
// long histories: it starts from the catalog read model's folded states and folds on top only the
// events each stream has beyond the version the read model holds.
func (a *App) Catalog(ctx context.Context, project string) (*domain.Catalog, error) {
	p, err := a.LoadProject(ctx, project)
	if err != nil {
		return nil, err
	}
	cat := domain.NewCatalog()
	cat.AddProject(p)
	for _, kind := range []struct{ prefix, table string }{{"flag/", "rm_flags"}, {"segment/", "rm_segments"}} {
		states, versions, err := a.readModelStates(ctx, kind.table, kind.prefix, project)
		if err != nil {
			return nil, err
		}
		newer, err := a.store.LoadPrefixNewerThan(ctx, kind.prefix+project+"/", kind.table, project)
		if err != nil {
			return nil, err
		}
		for streamID, events := range newer {
			agg := states[streamID]
			if events[0].Version == 1 {
				agg = nil
			} else if agg == nil || versions[streamID]+1 != events[0].Version {
				// The read model moved between the two reads (or does not hold the stream yet):
				// fold this stream whole rather than stitch a gap.
				if events, err = a.store.Load(ctx, streamID); err != nil {
					return nil, err
				}
				agg = nil
			}
			if agg == nil {
				if agg, err = projections.NewAggregate(streamID); err != nil {
					return nil, err
				}
			}
			for _, e := range events {
				if err := agg.ApplyRecorded(e); err != nil {
					return nil, fmt.Errorf("console: catalog: fold %s v%d: %w", streamID, e.Version, err)
				}
			}
			states[streamID] = agg
		}
		for _, agg := range states {
			switch v := agg.(type) {
			case *domain.Flag:
				cat.AddFlag(v)
			case *domain.Segment:
				cat.AddSegment(v)
			}
		}
	}
	return cat, nil
}

// readModelStates loads the folded states (and their versions) the catalog read model holds for
// a project, by stream id.
func (a *App) readModelStates(ctx context.Context, table, prefix, project string) (map[string]projections.Aggregate, map[string]int64, error) {
	rows, err := a.pool.Query(ctx, `SELECT key, state, version FROM `+table+` WHERE project = $1`, project)
	if err != nil {
		return nil, nil, fmt.Errorf("console: catalog %s of %s: %w", table, project, err)
	}
	defer rows.Close()
	out := map[string]projections.Aggregate{}
	versions := map[string]int64{}
	for rows.Next() {
		var key string
		var state []byte
		var version int64
		if err := rows.Scan(&key, &state, &version); err != nil {
			return nil, nil, fmt.Errorf("console: catalog scan %s: %w", table, err)
		}
		streamID := prefix + project + "/" + key
		agg, err := projections.NewAggregate(streamID)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(state, agg); err != nil {
			return nil, nil, fmt.Errorf("console: catalog decode %s: %w", streamID, err)
		}
		out[streamID] = agg
		versions[streamID] = version
	}
	return out, versions, rows.Err()
}

// AnyVersion tells Execute to accept whatever version it loads (no If-Match given).
const AnyVersion int64 = -1

// Decision turns the current state (nil for a new stream) into events.
type Decision func(current projections.Aggregate) ([]domain.Event, error)

// Execute runs one command on streamID: load and fold, check the caller's expected version, decide,
// append with optimistic concurrency. It returns the state after the command and its version. A
// decision that returns no events changes nothing and appends nothing.
func (a *App) Execute(ctx context.Context, streamID string, expected int64, meta domain.Metadata, decide Decision) (projections.Aggregate, int64, error) {
	events, err := a.store.Load(ctx, streamID)
	if err != nil {
		return nil, 0, err
	}
	var current projections.Aggregate
	var version int64
	if len(events) > 0 {
		if current, err = projections.Fold(streamID, events); err != nil {
			return nil, 0, err
		}
		version = events[len(events)-1].Version
	}
	if expected != AnyVersion && expected != version {
		return nil, 0, &domain.Error{Code: domain.EConflict,
			Message: fmt.Sprintf("version %d was expected but the current version is %d; reload and retry", expected, version),
			Details: map[string]any{"current_version": version}}
	}
	newEvents, err := decide(current)
	if err != nil {
		return nil, 0, err
	}
	if len(newEvents) == 0 {
		return current, version, nil
	}
	recorded, err := a.store.Append(ctx, streamID, version, meta, newEvents...)
	if err != nil {
		return nil, 0, err
	}
	if current == nil {
		if current, err = projections.NewAggregate(streamID); err != nil {
			return nil, 0, err
		}
	}
	for _, r := range recorded {
		if err := current.ApplyRecorded(r); err != nil {
			return nil, 0, err
		}
	}
	last := recorded[len(recorded)-1].Version
	a.awaitReadModels(ctx, streamID, last)
	return current, last, nil
}

// awaitReadModels gives read-your-writes to clients that write then list. It never fails the
// command, which is already committed: if the read models lag (Redis down, projector stopped), the
// answer goes out and the read models catch up later.
func (a *App) awaitReadModels(ctx context.Context, streamID string, version int64) {
	if a.wait <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	if err := projector.WaitFor(wctx, a.pool, streamID, version, waitedProjections); err != nil {
		a.log.Warn("read models lag behind a committed write", "stream", streamID, "version", version, "err", err)
	}
}
