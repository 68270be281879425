package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/projections/experiments"
)

// --- aggregates, folded from the event store (current; ENotFound when the stream is empty) ---

// Project returns a project and its version.
func (q *Queries) Project(ctx context.Context, project string) (*domain.Project, int64, error) {
	return mustLoad[domain.Project](ctx, q.c, domain.ProjectStream(project), fmt.Sprintf("project %q", project))
}

// Environment returns one environment of a project.
func (q *Queries) Environment(ctx context.Context, project, env string) (*domain.Environment, error) {
	p, _, err := q.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	e := p.Environments[env]
	if e == nil {
		return nil, domain.Errorf(domain.ENotFound, "environment %q not found in project %q", env, project)
	}
	return e, nil
}

// Flag returns a flag and its version.
func (q *Queries) Flag(ctx context.Context, project, flag string) (*domain.Flag, int64, error) {
	return mustLoad[domain.Flag](ctx, q.c, domain.FlagStream(project, flag), fmt.Sprintf("flag %q in project %q", flag, project))
}

// Segment returns a segment and its version.
func (q *Queries) Segment(ctx context.Context, project, segment string) (*domain.Segment, int64, error) {
	return mustLoad[domain.Segment](ctx, q.c, domain.SegmentStream(project, segment), fmt.Sprintf("segment %q in project %q", segment, project))
}

// Goal returns a goal and its version.
func (q *Queries) Goal(ctx context.Context, project, goal string) (*domain.Goal, int64, error) {
	return mustLoad[domain.Goal](ctx, q.c, domain.GoalStream(project, goal), fmt.Sprintf("goal %q in project %q", goal, project))
}

// Experiment returns an experiment and its version.
func (q *Queries) Experiment(ctx context.Context, project, experiment string) (*domain.Experiment, int64, error) {
	return mustLoad[domain.Experiment](ctx, q.c, domain.ExperimentStream(project, experiment),
		fmt.Sprintf("experiment %q in project %q", experiment, project))
}

// Token returns an API token (never its secret: only its hash is stored).
func (q *Queries) Token(ctx context.Context, id string) (*domain.APIToken, int64, error) {
	return mustLoad[domain.APIToken](ctx, q.c, domain.TokenStream(id), fmt.Sprintf("token %q", id))
}

// ScheduledChange returns a scheduled change and its version.
func (q *Queries) ScheduledChange(ctx context.Context, project, id string) (*domain.ScheduledChange, int64, error) {
	return mustLoad[domain.ScheduledChange](ctx, q.c, domain.ScheduleStream(project, id), "scheduled change "+id)
}

// Rollout returns a progressive rollout and its version.
func (q *Queries) Rollout(ctx context.Context, project, id string) (*domain.Rollout, int64, error) {
	return mustLoad[domain.Rollout](ctx, q.c, domain.RolloutStream(project, id), "rollout "+id)
}

// AutoOpsRule returns an auto-ops rule and its version; a deleted rule is not found.
func (q *Queries) AutoOpsRule(ctx context.Context, project, id string) (*domain.AutoOpsRule, int64, error) {
	r, v, err := mustLoad[domain.AutoOpsRule](ctx, q.c, domain.AutoOpsStream(project, id), "auto-ops rule "+id)
	if err == nil && r.Deleted {
		return nil, 0, domain.Errorf(domain.ENotFound, "auto-ops rule %s not found", id)
	}
	return r, v, err
}

// Trigger returns a webhook trigger and its version; a deleted trigger is not found.
func (q *Queries) Trigger(ctx context.Context, project, id string) (*domain.Trigger, int64, error) {
	t, v, err := mustLoad[domain.Trigger](ctx, q.c, domain.TriggerStream(project, id), "trigger "+id)
	if err == nil && t.Deleted {
		return nil, 0, domain.Errorf(domain.ENotFound, "trigger %s not found", id)
	}
	return t, v, err
}

// optionalFlag is a flag a command names but may refuse itself (nil when the key is not a valid
// key or names no flag: the domain then answers with the right field).
func (q *Queries) optionalFlag(ctx context.Context, project, flag string) (*domain.Flag, error) {
	if !domain.ValidKey(flag) {
		return nil, nil
	}
	f, _, err := load[domain.Flag](ctx, q.c, domain.FlagStream(project, flag))
	return f, err
}

// ActiveRollout returns the rollout of flag in env that is scheduled, running or paused; nil when
// there is none.
func (q *Queries) ActiveRollout(ctx context.Context, project, flag, env string) (*domain.Rollout, error) {
	streams, err := q.c.store.LoadPrefix(ctx, "rollout/"+project+"/")
	if err != nil {
		return nil, err
	}
	for streamID, events := range streams {
		r, err := fold[domain.Rollout](streamID, events)
		if err != nil {
			return nil, err
		}
		if r.Active() && r.Flag == flag && r.Environment == env {
			return r, nil
		}
	}
	return nil, nil
}

// --- reference data commands validate against (current, from the event store) ---

// Catalog gathers the reference data commands validate against: the project's environments,
// flags and segments. It must be current, not eventually consistent (a segment created a moment
// ago can be used at once, even while Redis or the projector is down), yet cheap for projects with
// many flags and long histories: it starts from the compact reference data the catalog read model
// keeps for each flag and segment (domain.FlagInfo / SegmentInfo, column info), never decoding a
// folded state it does not need, and folds only the streams that have events beyond the version
// the read model holds (usually none, or the few writes the projector has not applied yet).
func (q *Queries) Catalog(ctx context.Context, project string) (*domain.Catalog, error) {
	p, _, err := q.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	cat := domain.NewCatalog()
	cat.AddProject(p)
	if cat.Flags, err = catalogInfos(ctx, q.c, "flag/", "rm_flags", project, domain.FlagInfoOf); err != nil {
		return nil, err
	}
	if cat.Segments, err = catalogInfos(ctx, q.c, "segment/", "rm_segments", project, domain.SegmentInfoOf); err != nil {
		return nil, err
	}
	return cat, nil
}

// catalogInfos returns the current catalog entry (infoOf of the current state) of every stream of
// a kind in a project, by key: the read model's entries (table) brought up to date with the events
// beyond them.
func catalogInfos[T any, PT aggregate[T], I any](ctx context.Context, c *core, prefix, table, project string, infoOf func(PT) I) (map[string]I, error) {
	infos, err := readModelInfos(ctx, c, table, project, infoOf)
	if err != nil {
		return nil, err
	}
	streamPrefix := prefix + project + "/"
	newer, err := c.store.LoadPrefixNewerThan(ctx, streamPrefix, table, project)
	if err != nil || len(newer) == 0 {
		return infos, err
	}
	// A stream with events beyond the read model needs its whole state to fold them onto: the read
	// model's folded state when it is exactly one version behind them, else the stream itself.
	var behind []string
	for streamID, events := range newer {
		if events[0].Version > 1 {
			behind = append(behind, strings.TrimPrefix(streamID, streamPrefix))
		}
	}
	states, versions, err := readModelStates[T, PT](ctx, c, table, project, behind)
	if err != nil {
		return nil, err
	}
	for streamID, events := range newer {
		key := strings.TrimPrefix(streamID, streamPrefix)
		agg := PT(new(T))
		if events[0].Version > 1 {
			if st, ok := states[key]; ok && versions[key]+1 == events[0].Version {
				agg = st
			} else {
				// The read model moved between the reads (or does not hold the stream yet):
				// fold this stream whole rather than stitch a gap.
				if events, err = c.store.Load(ctx, streamID); err != nil {
					return nil, err
				}
			}
		}
		for _, e := range events {
			if err := agg.ApplyRecorded(e); err != nil {
				return nil, fmt.Errorf("app: catalog: fold %s v%d: %w", streamID, e.Version, err)
			}
		}
		infos[key] = infoOf(agg)
	}
	return infos, nil
}

// readModelInfos loads the catalog entries the catalog read model holds for a project, by key. A
// row whose info was not computed at its current version (written by a binary older than the
// column, during a rolling upgrade) is read from its folded state instead.
//
// Every flag or segment write reads every entry of the project, and most have not changed since
// the last write: entries already decoded at a row's version are taken from c.infos, and only the
// others are fetched and decoded.
func readModelInfos[T any, PT aggregate[T], I any](ctx context.Context, c *core, table, project string, infoOf func(PT) I) (map[string]I, error) {
	rows, err := c.pool.Query(ctx, `SELECT key, version, updated_at, coalesce(info_version = version, false)
		FROM `+table+` WHERE project = $1`, project)
	if err != nil {
		return nil, fmt.Errorf("app: catalog %s of %s: %w", table, project, err)
	}
	out := map[string]I{}
	var missing []string
	for rows.Next() {
		var key string
		var at cachedAt
		var current bool
		if err := rows.Scan(&key, &at.version, &at.updatedAt, &current); err != nil {
			rows.Close()
			return nil, fmt.Errorf("app: catalog scan %s: %w", table, err)
		}
		if entry, ok := cachedInfo[I](c.infos, table, project, key, at); ok && current {
			out[key] = entry
		} else {
			missing = append(missing, key)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(missing) == 0 {
		return out, err
	}

	rows, err = c.pool.Query(ctx, `SELECT key, version, updated_at,
		  CASE WHEN info_version = version THEN info END,
		  CASE WHEN info_version IS DISTINCT FROM version THEN state END
		FROM `+table+` WHERE project = $1 AND key = ANY($2)`, project, missing)
	if err != nil {
		return nil, fmt.Errorf("app: catalog %s of %s: %w", table, project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var at cachedAt
		var info, state []byte
		if err := rows.Scan(&key, &at.version, &at.updatedAt, &info, &state); err != nil {
			return nil, fmt.Errorf("app: catalog scan %s: %w", table, err)
		}
		var entry I
		if info != nil {
			if err := json.Unmarshal(info, &entry); err != nil {
				return nil, fmt.Errorf("app: catalog decode %s info of %s/%s: %w", table, project, key, err)
			}
			c.infos.put(table, project, key, at, entry)
		} else {
			agg := PT(new(T))
			if err := json.Unmarshal(state, agg); err != nil {
				return nil, fmt.Errorf("app: catalog decode %s state of %s/%s: %w", table, project, key, err)
			}
			entry = infoOf(agg)
		}
		out[key] = entry
	}
	return out, rows.Err()
}

// catalogCache holds decoded catalog entries by table, project and key, with the row version and
// updated_at they were read at. An entry at a stream's version never changes (events are
// append-only, and updated_at tells a database restored to another history apart), so a hit needs
// no invalidation; a row at another version is a miss and replaces the entry. It grows with the
// flags and segments of the projects this process writes to (entries of a few hundred bytes).
// Callers share the cached values: catalogs only read their entries, never modify them.
type catalogCache struct {
	mu      sync.Mutex
	entries map[string]cachedEntry
}

type cachedAt struct {
	version   int64
	updatedAt time.Time
}

type cachedEntry struct {
	at   cachedAt
	info any
}

func cacheKey(table, project, key string) string { return table + "\x00" + project + "\x00" + key }

func cachedInfo[I any](c *catalogCache, table, project, key string, at cachedAt) (I, bool) {
	c.mu.Lock()
	e, ok := c.entries[cacheKey(table, project, key)]
	c.mu.Unlock()
	info, isI := e.info.(I)
	if !ok || !isI || e.at.version != at.version || !e.at.updatedAt.Equal(at.updatedAt) {
		var zero I
		return zero, false
	}
	return info, true
}

func (c *catalogCache) put(table, project, key string, at cachedAt, info any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedEntry{}
	}
	c.entries[cacheKey(table, project, key)] = cachedEntry{at: at, info: info}
}

// readModelStates loads the folded states (and their versions) the catalog read model holds for
// some keys of a project.
func readModelStates[T any, PT aggregate[T]](ctx context.Context, c *core, table, project string, keys []string) (map[string]PT, map[string]int64, error) {
	out := map[string]PT{}
	versions := map[string]int64{}
	if len(keys) == 0 {
		return out, versions, nil
	}
	rows, err := c.pool.Query(ctx, `SELECT key, state, version FROM `+table+` WHERE project = $1 AND key = ANY($2)`, project, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("app: catalog %s of %s: %w", table, project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var state []byte
		var version int64
		if err := rows.Scan(&key, &state, &version); err != nil {
			return nil, nil, fmt.Errorf("app: catalog scan %s: %w", table, err)
		}
		agg := PT(new(T))
		if err := json.Unmarshal(state, agg); err != nil {
			return nil, nil, fmt.Errorf("app: catalog decode %s state of %s/%s: %w", table, project, key, err)
		}
		out[key] = agg
		versions[key] = version
	}
	return out, versions, rows.Err()
}

// ExperimentCatalog folds the project's goals, experiments and rollouts on top of the flag
// catalog: what experiment, goal, rollout and auto-ops commands validate against.
func (q *Queries) ExperimentCatalog(ctx context.Context, project string) (*domain.ExperimentCatalog, error) {
	cat, err := q.Catalog(ctx, project)
	if err != nil {
		return nil, err
	}
	goals, err := foldPrefix[domain.Goal](ctx, q.c, "goal/"+project+"/")
	if err != nil {
		return nil, err
	}
	exps, err := foldPrefix[domain.Experiment](ctx, q.c, "experiment/"+project+"/")
	if err != nil {
		return nil, err
	}
	rollouts, err := foldPrefix[domain.Rollout](ctx, q.c, "rollout/"+project+"/")
	if err != nil {
		return nil, err
	}
	ec := domain.BuildExperimentCatalog(cat, goals, exps)
	for _, r := range rollouts {
		ec.AddRollout(r) // an experiment does not start on a flag being rolled out
	}
	return ec, nil
}

// foldPrefix folds every stream whose id starts with prefix.
func foldPrefix[T any, PT aggregate[T]](ctx context.Context, c *core, prefix string) ([]PT, error) {
	byStream, err := c.store.LoadPrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]PT, 0, len(byStream))
	for id, events := range byStream {
		agg, err := fold[T, PT](id, events)
		if err != nil {
			return nil, err
		}
		out = append(out, agg)
	}
	return out, nil
}

// --- history: aggregates as they were at a moment ---

// FlagAt returns a flag as it was at a moment, with its version then.
func (q *Queries) FlagAt(ctx context.Context, project, flag string, at time.Time) (*domain.Flag, int64, error) {
	stream := domain.FlagStream(project, flag)
	events, err := q.c.store.LoadUntil(ctx, stream, at)
	if err != nil {
		return nil, 0, err
	}
	if len(events) == 0 {
		return nil, 0, domain.Errorf(domain.ENotFound, "flag %q did not exist in project %q at %s", flag, project, at.Format(time.RFC3339))
	}
	f, err := fold[domain.Flag](stream, events)
	if err != nil {
		return nil, 0, err
	}
	return f, events[len(events)-1].Version, nil
}

// RulesetAt rebuilds an environment's ruleset as it was at a moment from the event store: every
// flag, segment and running experiment of the project folded up to then.
func (q *Queries) RulesetAt(ctx context.Context, project, env string, at time.Time) (*domain.Ruleset, error) {
	stream := domain.ProjectStream(project)
	events, err := q.c.store.LoadUntil(ctx, stream, at)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, domain.Errorf(domain.ENotFound, "project %q did not exist at %s", project, at.Format(time.RFC3339))
	}
	p, err := fold[domain.Project](stream, events)
	if err != nil {
		return nil, err
	}
	if p.Environments[env] == nil {
		return nil, domain.Errorf(domain.ENotFound, "environment %q did not exist in project %q at %s", env, project, at.Format(time.RFC3339))
	}
	rs := &domain.Ruleset{Project: project, Environment: env, Flags: map[string]*domain.FlagConfig{}, Segments: map[string]*domain.Segment{}}
	var last int64
	lastOf := func(evs []domain.RecordedEvent) {
		if p := evs[len(evs)-1].Position; p > last {
			last = p
		}
	}
	flags, err := foldPrefixUntil[domain.Flag](ctx, q.c, "flag/"+project+"/", at, lastOf)
	if err != nil {
		return nil, err
	}
	segments, err := foldPrefixUntil[domain.Segment](ctx, q.c, "segment/"+project+"/", at, lastOf)
	if err != nil {
		return nil, err
	}
	exps, err := foldPrefixUntil[domain.Experiment](ctx, q.c, "experiment/"+project+"/", at, lastOf)
	if err != nil {
		return nil, err
	}
	for _, s := range segments {
		if !s.Archived {
			rs.Segments[s.Key] = &domain.Segment{Project: s.Project, Key: s.Key, Match: s.Match, Clauses: s.Clauses,
				Included: s.Included, Excluded: s.Excluded, Version: s.Version}
		}
	}
	experiments := map[string]*domain.ExperimentSplit{}
	for _, e := range exps {
		if e.Running() && e.Environment == env {
			split := e.Split()
			experiments[e.Flag] = &split
		}
	}
	for _, f := range flags {
		if f.Archived {
			continue
		}
		cfg := f.ConfigFor(env)
		cfg.Experiment = experiments[f.Key]
		rs.Flags[f.Key] = cfg
	}
	rs.Version = last
	return rs, nil
}

// foldPrefixUntil folds every stream under prefix as it was at a moment; seen is called with
// each stream's events.
func foldPrefixUntil[T any, PT aggregate[T]](ctx context.Context, c *core, prefix string, at time.Time, seen func([]domain.RecordedEvent)) ([]PT, error) {
	byStream, err := c.store.LoadPrefixUntil(ctx, prefix, at)
	if err != nil {
		return nil, err
	}
	out := make([]PT, 0, len(byStream))
	for id, events := range byStream {
		seen(events)
		agg, err := fold[T, PT](id, events)
		if err != nil {
			return nil, err
		}
		out = append(out, agg)
	}
	return out, nil
}

// --- read models (eventually consistent lists) ---

// ListFlags is one page of a project's flags.
func (q *Queries) ListFlags(ctx context.Context, lq catalog.ListQuery) ([]*domain.Flag, string, error) {
	return catalog.ListFlags(ctx, q.c.pool, lq)
}

// ListSegments is one page of a project's segments.
func (q *Queries) ListSegments(ctx context.Context, lq catalog.ListQuery) ([]*domain.Segment, string, error) {
	return catalog.ListSegments(ctx, q.c.pool, lq)
}

// ListProjects is one page of projects (only one, when only is set: a token restricted to it).
func (q *Queries) ListProjects(ctx context.Context, cursor string, limit int, only string) ([]catalog.ProjectSummary, string, error) {
	return catalog.ListProjects(ctx, q.c.pool, cursor, limit, only)
}

// ListGoals lists a project's goals (archived ones instead, with archived).
func (q *Queries) ListGoals(ctx context.Context, project string, archived bool) ([]*domain.Goal, error) {
	return experiments.List[domain.Goal](ctx, q.c.pool, project, archived)
}

// ListExperiments lists a project's experiments (archived ones instead, with archived).
func (q *Queries) ListExperiments(ctx context.Context, project string, archived bool) ([]*domain.Experiment, error) {
	return experiments.List[domain.Experiment](ctx, q.c.pool, project, archived)
}

// ListSchedules is one page of scheduled changes.
func (q *Queries) ListSchedules(ctx context.Context, lq delivery.ListQuery) ([]*domain.ScheduledChange, string, error) {
	return delivery.ListSchedules(ctx, q.c.pool, lq)
}

// ListRollouts is one page of rollouts.
func (q *Queries) ListRollouts(ctx context.Context, lq delivery.ListQuery) ([]*domain.Rollout, string, error) {
	return delivery.ListRollouts(ctx, q.c.pool, lq)
}

// ListAutoOpsRules is one page of auto-ops rules.
func (q *Queries) ListAutoOpsRules(ctx context.Context, lq delivery.ListQuery) ([]*domain.AutoOpsRule, string, error) {
	return delivery.ListRules(ctx, q.c.pool, lq)
}

// ListAutoOpsFirings is one page of a rule's firings.
func (q *Queries) ListAutoOpsFirings(ctx context.Context, project, rule, cursor string, limit int) ([]delivery.Firing, string, error) {
	return delivery.ListFirings(ctx, q.c.pool, project, rule, cursor, limit)
}

// ListTriggers is one page of webhook triggers (never their secrets).
func (q *Queries) ListTriggers(ctx context.Context, lq delivery.ListQuery) ([]delivery.TriggerSummary, string, error) {
	return delivery.ListTriggers(ctx, q.c.pool, lq)
}

// TokenSummary is an API token as listed: never its secret or hash.
type TokenSummary struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Project string `json:"project,omitempty"`
	// Environments of an edge token narrowed to some.
	Environments []string   `json:"environments,omitempty"`
	Revoked      bool       `json:"revoked"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// SummarizeToken is the listed form of a token.
func SummarizeToken(t *domain.APIToken) TokenSummary {
	v := TokenSummary{ID: t.ID, Name: t.Name, Scope: t.Scope, Project: t.Project, Environments: t.Environments, Revoked: t.Revoked, CreatedAt: t.CreatedAt}
	if t.Revoked {
		at := t.RevokedAt
		v.RevokedAt = &at
	}
	return v
}

// ListTokens lists every API token, oldest first (the caller filters what its principal may see).
func (q *Queries) ListTokens(ctx context.Context) ([]TokenSummary, error) {
	rows, err := q.c.pool.Query(ctx,
		`SELECT id, name, scope, project, environments, revoked, created_at, revoked_at FROM rm_api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("app: list tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenSummary
	for rows.Next() {
		var t TokenSummary
		if err := rows.Scan(&t.ID, &t.Name, &t.Scope, &t.Project, &t.Environments, &t.Revoked, &t.CreatedAt, &t.RevokedAt); err != nil {
			return nil, fmt.Errorf("app: scan token: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("app: list tokens: %w", err)
	}
	return out, nil
}
