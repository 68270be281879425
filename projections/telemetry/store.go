package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Batcher sends pipelined statements: a pool, a connection or a transaction.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// WriteResult says what Write stored.
type WriteResult struct {
	// NewBatch is false when the batch had been stored before (a redelivered message).
	NewBatch bool
	// Evaluations and Goals are the event rows inserted; events already stored (same event_id
	// and occurred_at) are not counted.
	Evaluations, Goals int64
	// NewExposures counts experiment units inserted or changed (first exposure moved earlier, or
	// a second variation seen).
	NewExposures int64
	// Attributions counts goal attributions inserted (each also counted in experiment_user_goals).
	Attributions int64
	// NewBatches counts the batches stored for the first time (WriteAll: several at once).
	NewBatches int
}

// Rows is the number of rows written to the event tables.
func (r WriteResult) Rows() int64 { return r.Evaluations + r.Goals }

// Statements of Write. Each takes the batch's columns as arrays ($1.. as documented at each) and
// is idempotent: the event tables skip (event_id, occurred_at) already stored, exposures keep the
// earliest, attributions skip (goal event, subject) already attributed, and per-user goal sums
// grow only by attributions actually inserted.
const (
	// One row per batch: $1 received_at[], $2 batch id[], $3 project[], $4 environment[],
	// $5 evaluations[], $6 goals[]. It returns the batches logged now (the others were stored before).
	sqlLogBatches = `INSERT INTO telemetry_batches (received_at, batch_id, project, environment, evaluations, goals)
SELECT * FROM unnest($1::timestamptz[], $2::uuid[], $3::text[], $4::text[], $5::int4[], $6::int4[])
ON CONFLICT (batch_id, received_at) DO NOTHING
RETURNING batch_id`

	// $1 occurred_at[], $2 event_id[], $3 project, $4 environment, $5 flag[], $6 variation[],
	// $7 reason[], $8 user[], $9 experiment[], $10 attributes[], $11 count[], $12 received_at[]
	// (per row: the events of several batches go in one statement).
	sqlInsertEvaluations = `INSERT INTO evaluation_events (occurred_at, event_id, project, environment, flag, variation,
  reason, user_key, experiment, attributes, evaluations, received_at)
SELECT t, id, $3, $4, f, v, r, NULLIF(u, ''), NULLIF(x, ''), NULLIF(a, '')::jsonb, n, rt
FROM unnest($1::timestamptz[], $2::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::text[], $11::int4[], $12::timestamptz[]) AS e(t, id, f, v, r, u, x, a, n, rt)
ON CONFLICT (event_id, occurred_at) DO NOTHING`

	// The experiment units of a batch's evaluations (computed by batchUnits, filtered by the
	// unit cache): per user and subject, the earliest exposure with its variation, and the
	// least and greatest variation the batch saw.
	// $3 user[], $4 subject_kind[], $5 subject[], $6 first_at[], $7 first_variation[],
	// $8 min_variation[], $9 max_variation[] ($1 project, $2 environment).
	sqlUnits = `SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[])
  AS b(user_key, subject_kind, subject, first_at, first_variation, min_variation, max_variation)`

	// New units. A separate statement from the update below: when another transaction inserts
	// the same unit at the same moment, this waits for it and does nothing, and the update, a
	// later statement, then sees the committed row. Sorted, so concurrent writers lock in one order.
	sqlInsertExposures = `INSERT INTO experiment_exposures (project, environment, user_key, subject_kind, subject, variation,
  first_exposed_at, multiple_variations)
SELECT $1, $2, user_key, subject_kind, subject, first_variation, first_at, min_variation <> max_variation
FROM (` + sqlUnits + `) b ORDER BY user_key, subject_kind, subject
ON CONFLICT DO NOTHING`

	// Known units the batch changes: an exposure earlier than the stored first one moves it (and
	// its variation); a variation other than the stored one marks the user. Units are looked up
	// one by one by primary key (LATERAL ... OFFSET 0 is never flattened into a join), and the
	// update runs only when some unit changes, so the plan does not depend on table statistics
	// (a fresh table grows faster than autoanalyze runs, and a plan that believes it holds one
	// row scans every unit of the environment). Then goals already
	// stored are attributed to the units this transaction inserted (previous statement: their
	// updated_at is now()) or moved, and their per-user sums grow by what was inserted. The
	// result is the state of every unit of the batch (for the unit cache), each row with the
	// number of attributions inserted.
	sqlUpdateExposures = `WITH b AS (` + sqlUnits + `),
known AS MATERIALIZED (
  SELECT b.*, e.variation, e.first_exposed_at, e.multiple_variations, e.updated_at = now() AS inserted
  FROM b CROSS JOIN LATERAL (
    SELECT variation, first_exposed_at, multiple_variations, updated_at FROM experiment_exposures e
    WHERE e.project = $1 AND e.environment = $2 AND e.user_key = b.user_key
      AND e.subject_kind = b.subject_kind AND e.subject = b.subject
    OFFSET 0) e -- not flattened: one primary-key probe per unit
),
need AS MATERIALIZED (
  SELECT * FROM known k
  WHERE k.first_at < k.first_exposed_at
     OR (NOT k.multiple_variations AND (k.min_variation <> k.variation OR k.max_variation <> k.variation))
),
moved AS (
  UPDATE experiment_exposures e SET
    first_exposed_at = LEAST(e.first_exposed_at, n.first_at),
    variation = CASE WHEN n.first_at < e.first_exposed_at THEN n.first_variation ELSE e.variation END,
    multiple_variations = e.multiple_variations OR n.min_variation <> e.variation OR n.max_variation <> e.variation,
    updated_at = now()
  FROM need n
  WHERE EXISTS (SELECT 1 FROM need) -- a one-time gate: nothing is scanned when no unit changes
    AND e.project = $1 AND e.environment = $2 AND e.user_key = n.user_key
    AND e.subject_kind = n.subject_kind AND e.subject = n.subject
    AND (n.first_at < e.first_exposed_at
         OR (NOT e.multiple_variations AND (n.min_variation <> e.variation OR n.max_variation <> e.variation)))
  RETURNING e.user_key, e.subject_kind, e.subject, e.variation, e.first_exposed_at, e.multiple_variations
),
units AS (
  SELECT user_key, subject_kind, subject, variation, first_exposed_at FROM moved
  UNION ALL
  SELECT user_key, subject_kind, subject, variation, first_exposed_at FROM known WHERE inserted
),` + attributeAndSum + `
SELECT g.occurred_at, g.event_id, $1, $2, g.goal, u.subject_kind, u.subject, u.variation, u.user_key, g.value
FROM units u CROSS JOIN LATERAL (
  SELECT occurred_at, event_id, goal, value FROM goal_events g
  WHERE g.project = $1 AND g.environment = $2 AND g.user_key = u.user_key AND g.occurred_at >= u.first_exposed_at
  OFFSET 0) g` +
		attributeAndSumEnd + `
SELECT k.user_key, k.subject_kind, k.subject, coalesce(m.variation, k.variation),
       coalesce(m.first_exposed_at, k.first_exposed_at), coalesce(m.multiple_variations, k.multiple_variations),
       m.user_key IS NOT NULL, (SELECT count(*) FROM att)
FROM known k LEFT JOIN moved m USING (user_key, subject_kind, subject)`

	// $1 occurred_at[], $2 event_id[], $3 project, $4 environment, $5 goal[], $6 user[],
	// $7 value[] (NULL when none), $8 received_at[]. New goal events are attributed to every
	// exposure of their user that came first (including exposures of this batch, stored by an
	// earlier statement of the transaction).
	sqlInsertGoals = `WITH g AS (
  INSERT INTO goal_events (occurred_at, event_id, project, environment, goal, user_key, value, received_at)
  SELECT t, id, $3, $4, k, u, v, rt
  FROM unnest($1::timestamptz[], $2::uuid[], $5::text[], $6::text[], $7::float8[], $8::timestamptz[]) AS e(t, id, k, u, v, rt)
  ON CONFLICT (event_id, occurred_at) DO NOTHING
  RETURNING occurred_at, event_id, goal, user_key, value
),` + attributeAndSum + `
SELECT g.occurred_at, g.event_id, $3, $4, g.goal, x.subject_kind, x.subject, x.variation, g.user_key, g.value
FROM g CROSS JOIN LATERAL (
  SELECT subject_kind, subject, variation FROM experiment_exposures x
  WHERE x.project = $3 AND x.environment = $4 AND x.user_key = g.user_key AND x.first_exposed_at <= g.occurred_at
  OFFSET 0) x` +
		attributeAndSumEnd + `
SELECT (SELECT count(*) FROM g), (SELECT count(*) FROM att)`

	// The users whose events the batch stores, for the experiment analysis's incremental builds
	// (services/roles/analysis/units.go): in the same transaction as the events, so a build that
	// reads the log by snapshot sees a user's log row exactly when it sees the events. $3
	// experiment[] ('' for goal events), $4 user[] ($1 project, $2 environment).
	sqlLogTouchedUsers = `INSERT INTO experiment_touched_users (project, environment, experiment, user_key)
SELECT $1, $2, x, u FROM unnest($3::text[], $4::text[]) AS t(x, u)`

	// attributeAndSum ... attributeAndSumEnd wrap a SELECT of goal attributions: insert them
	// (CTE att), and add the ones inserted to the per-user goal sums (sorted, so concurrent
	// writers lock in one order).
	attributeAndSum = `
att AS (
  INSERT INTO goal_attributions (occurred_at, event_id, project, environment, goal, subject_kind, subject,
    variation, user_key, value)`
	attributeAndSumEnd = `
  ON CONFLICT (event_id, subject_kind, subject, occurred_at) DO NOTHING
  RETURNING project, environment, subject_kind, subject, user_key, goal, value, occurred_at
),
sums AS (
  INSERT INTO experiment_user_goals AS s (project, environment, subject_kind, subject, user_key, goal,
    conversions, value_sum, value_sum_squares, first_at, last_at)
  SELECT project, environment, subject_kind, subject, user_key, goal, count(*),
         coalesce(sum(value), 0), coalesce(sum(value * value), 0), min(occurred_at), max(occurred_at)
  FROM att GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (project, environment, subject_kind, subject, user_key, goal) DO UPDATE SET
    conversions = s.conversions + excluded.conversions,
    value_sum = s.value_sum + excluded.value_sum,
    value_sum_squares = s.value_sum_squares + excluded.value_sum_squares,
    first_at = LEAST(s.first_at, excluded.first_at),
    last_at = GREATEST(s.last_at, excluded.last_at)
)`
)

// Writer stores batches (Write), remembering the experiment units it saw stored: an evaluation
// that cannot change its unit (same variation, not earlier than the first exposure, or the user
// already marked) skips the exposure statements. A unit's stored state only moves forward
// (first exposure earlier, multiple_variations false to true), so a remembered state that is
// stale still decides such skips correctly. Safe for concurrent use. Tables emptied behind a
// Writer's back (a rebuild) need a new Writer.
type Writer struct {
	units *unitCache
}

// NewWriter returns a Writer remembering up to cacheSize units (0: none).
func NewWriter(cacheSize int) *Writer {
	if cacheSize <= 0 {
		return &Writer{}
	}
	return &Writer{units: &unitCache{max: cacheSize, m: make(map[unitKey]unitState)}}
}

// Write stores a batch without a unit cache (see Writer.Write).
func Write(ctx context.Context, db Batcher, b *Batch) (WriteResult, error) {
	return (&Writer{}).Write(ctx, db, b)
}

// Write stores a batch: the events, the experiment units and goal attributions they imply, and
// the batch log row, in one round trip (pipelined statements in one implicit transaction: all or
// nothing). It is idempotent: writing the same batch again, or events already stored by another
// batch, changes nothing.
func (w *Writer) Write(ctx context.Context, db Batcher, b *Batch) (WriteResult, error) {
	res, _, err := w.WriteAll(ctx, db, []*Batch{b})
	return res, err
}

// WriteAll stores several batches as Write stores one, all in one round trip and one
// transaction: the batches of one environment are merged into one set of statements (each
// event row keeps its batch's received_at). A projector that holds several messages thus pays
// the round trip, the statements' planning and the commit once for all of them instead of once
// per message, which is most of the cost of a message of a hundred events. The result adds up
// the batches' rows; NewBatch is true when every batch was new, NewBatches counts those, and
// isNew says which (per batch, in order). All or nothing, and idempotent as Write.
func (w *Writer) WriteAll(ctx context.Context, db Batcher, batches []*Batch) (res WriteResult, isNew []bool, err error) {
	if len(batches) == 0 {
		return WriteResult{NewBatch: true}, nil, nil
	}
	groups := groupByEnvironment(batches)
	pb := &pgx.Batch{}
	logCols := struct {
		receivedAt         []time.Time
		id                 IDs
		project, env       []string
		evaluations, goals []int32
	}{}
	for _, b := range batches {
		logCols.receivedAt = append(logCols.receivedAt, b.ReceivedAt)
		logCols.id = append(logCols.id, b.ID)
		logCols.project, logCols.env = append(logCols.project, b.Project), append(logCols.env, b.Environment)
		logCols.evaluations = append(logCols.evaluations, int32(len(b.Evaluations.EventID)))
		logCols.goals = append(logCols.goals, int32(len(b.Goals.EventID)))
	}
	pb.Queue(sqlLogBatches, logCols.receivedAt, logCols.id.PG(), logCols.project, logCols.env, logCols.evaluations, logCols.goals)
	for _, g := range groups {
		e := &g.evaluations
		if len(e.EventID) > 0 {
			pb.Queue(sqlInsertEvaluations, []time.Time(e.OccurredAt), e.EventID.PG(), g.project, g.environment, e.Flag, e.Variation,
				e.Reason, e.User, e.Experiment, e.Attributes, e.Count, g.evaluationsReceivedAt)
		}
		g.units = w.units.filter(g.project, g.environment, batchUnits(e))
		if u := &g.units; u.len() > 0 {
			args := []any{g.project, g.environment, u.user, u.kind, u.subject, u.firstAt,
				u.firstVariation, u.minVariation, u.maxVariation}
			pb.Queue(sqlInsertExposures, args...)
			pb.Queue(sqlUpdateExposures, args...)
		}
		if gc := &g.goals; len(gc.EventID) > 0 {
			values := make([]*float64, len(gc.Value))
			for i := range gc.Value {
				if gc.HasValue[i] {
					values[i] = &gc.Value[i]
				}
			}
			pb.Queue(sqlInsertGoals, []time.Time(gc.OccurredAt), gc.EventID.PG(), g.project, g.environment, gc.Goal, gc.User,
				values, g.goalsReceivedAt)
		}
		g.touchedExperiments, g.touchedUsers = touchedUsers(&g.evaluations, g.goals.User)
		if len(g.touchedUsers) > 0 {
			pb.Queue(sqlLogTouchedUsers, g.project, g.environment, g.touchedExperiments, g.touchedUsers)
		}
	}

	stored := make([][]unitRow, len(groups))
	isNew = make([]bool, len(batches))
	br := db.SendBatch(ctx, pb)
	err = func() error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("log batches: %w", err)
		}
		logged := map[uuid.UUID]bool{}
		var id uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { logged[id] = true; return nil }); err != nil {
			return fmt.Errorf("log batches: %w", err)
		}
		for i, b := range batches {
			if logged[b.ID] {
				isNew[i] = true
				res.NewBatches++
				delete(logged, b.ID) // the same message twice in one group: the first is the new one
			}
		}
		res.NewBatch = res.NewBatches == len(batches)
		for gi, g := range groups {
			if len(g.evaluations.EventID) > 0 {
				tag, err := br.Exec()
				if err != nil {
					return fmt.Errorf("insert evaluations: %w", err)
				}
				res.Evaluations += tag.RowsAffected()
			}
			if g.units.len() > 0 {
				tag, err := br.Exec()
				if err != nil {
					return fmt.Errorf("insert exposures: %w", err)
				}
				res.NewExposures += tag.RowsAffected()
				rows, err := br.Query()
				if err != nil {
					return fmt.Errorf("update exposures: %w", err)
				}
				var r unitRow
				var moved bool
				var attributed int64
				_, err = pgx.ForEachRow(rows, []any{&r.key.user, &r.key.kind, &r.key.subject, &r.state.variation,
					&r.state.first, &r.state.multiple, &moved, &attributed}, func() error {
					stored[gi] = append(stored[gi], r)
					if moved {
						res.NewExposures++
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("update exposures: %w", err)
				}
				res.Attributions += attributed // the same count on every row
			}
			if len(g.goals.EventID) > 0 {
				var goals, attributed int64
				if err := br.QueryRow().Scan(&goals, &attributed); err != nil {
					return fmt.Errorf("insert goals: %w", err)
				}
				res.Goals += goals
				res.Attributions += attributed
			}
			if len(g.touchedUsers) > 0 {
				if _, err := br.Exec(); err != nil {
					return fmt.Errorf("log touched users: %w", err)
				}
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if len(batches) == 1 {
			return WriteResult{}, nil, fmt.Errorf("telemetry: write batch %s: %w", batches[0].ID, err)
		}
		return WriteResult{}, nil, fmt.Errorf("telemetry: write %d batches (first %s): %w", len(batches), batches[0].ID, err)
	}
	for gi, g := range groups { // committed: Close read the implicit commit
		w.units.remember(g.project, g.environment, stored[gi])
	}
	return res, isNew, nil
}

// envGroup is the batches of one environment merged into one set of columns.
type envGroup struct {
	project, environment  string
	evaluations           EvaluationColumns
	evaluationsReceivedAt []time.Time
	goals                 GoalColumns
	goalsReceivedAt       []time.Time
	units                 units
	// touchedExperiments and touchedUsers are the (experiment, user) pairs logged for the
	// experiment analysis (touchedUsers).
	touchedExperiments, touchedUsers []string
}

// touchedUsers returns the distinct (experiment, user) pairs that the experiment analysis must
// recompute: users exposed in an experiment (with the key the evaluation named), and users with
// goal events (empty experiment), whose goals count for any experiment they are in.
func touchedUsers(e *EvaluationColumns, goalUsers []string) (experiments, users []string) {
	type pair struct{ experiment, user string }
	seen := map[pair]bool{}
	add := func(x, u string) {
		if u == "" || seen[pair{x, u}] {
			return
		}
		seen[pair{x, u}] = true
		experiments, users = append(experiments, x), append(users, u)
	}
	for i := range e.EventID {
		if e.Experiment[i] != "" && e.Variation[i] != "" {
			add(e.Experiment[i], e.User[i])
		}
	}
	for _, u := range goalUsers {
		add("", u)
	}
	return experiments, users
}

// groupByEnvironment merges batches per environment, in the order environments first appear.
func groupByEnvironment(batches []*Batch) []*envGroup {
	var groups []*envGroup
	for _, b := range batches {
		var g *envGroup
		for _, x := range groups {
			if x.project == b.Project && x.environment == b.Environment {
				g = x
				break
			}
		}
		if g == nil {
			g = &envGroup{project: b.Project, environment: b.Environment}
			groups = append(groups, g)
		}
		g.evaluations.append(&b.Evaluations)
		for range b.Evaluations.EventID {
			g.evaluationsReceivedAt = append(g.evaluationsReceivedAt, b.ReceivedAt)
		}
		g.goals.append(&b.Goals)
		for range b.Goals.EventID {
			g.goalsReceivedAt = append(g.goalsReceivedAt, b.ReceivedAt)
		}
	}
	return groups
}

func (c *EvaluationColumns) append(o *EvaluationColumns) {
	c.EventID, c.OccurredAt = append(c.EventID, o.EventID...), append(c.OccurredAt, o.OccurredAt...)
	c.Flag, c.Variation, c.Reason = append(c.Flag, o.Flag...), append(c.Variation, o.Variation...), append(c.Reason, o.Reason...)
	c.User, c.Experiment = append(c.User, o.User...), append(c.Experiment, o.Experiment...)
	c.Attributes, c.Count = append(c.Attributes, o.Attributes...), append(c.Count, o.Count...)
}

func (c *GoalColumns) append(o *GoalColumns) {
	c.EventID, c.OccurredAt = append(c.EventID, o.EventID...), append(c.OccurredAt, o.OccurredAt...)
	c.Goal, c.User = append(c.Goal, o.Goal...), append(c.User, o.User...)
	c.Value, c.HasValue = append(c.Value, o.Value...), append(c.HasValue, o.HasValue...)
}

// unitKey names an experiment unit within an environment.
type unitKey struct{ user, kind, subject string }

// unitState is what is stored of a unit.
type unitState struct {
	variation string
	first     time.Time
	multiple  bool
}

type unitRow struct {
	key   unitKey
	state unitState
}

// units are the experiment units of a batch, as columns for sqlUnits.
type units struct {
	user, kind, subject                        []string
	firstAt                                    []time.Time
	firstVariation, minVariation, maxVariation []string
}

func (u *units) len() int { return len(u.user) }

// batchUnits groups a batch's evaluations by unit, as sqlUnits describes (the earliest
// exposure wins; among simultaneous ones the least variation).
func batchUnits(e *EvaluationColumns) units {
	type agg struct {
		first              time.Time
		firstV, minV, maxV string
	}
	byKey := map[unitKey]*agg{}
	var order []unitKey
	for i := range e.EventID {
		if e.User[i] == "" || e.Variation[i] == "" {
			continue // counters expose nobody; errors served no variation
		}
		k := unitKey{user: e.User[i], kind: "flag", subject: e.Flag[i]}
		if e.Experiment[i] != "" {
			k.kind, k.subject = "experiment", e.Experiment[i]
		}
		t, v := e.OccurredAt[i], e.Variation[i]
		a := byKey[k]
		if a == nil {
			byKey[k] = &agg{first: t, firstV: v, minV: v, maxV: v}
			order = append(order, k)
			continue
		}
		if t.Before(a.first) || (t.Equal(a.first) && v < a.firstV) {
			a.first, a.firstV = t, v
		}
		a.minV, a.maxV = min(a.minV, v), max(a.maxV, v)
	}
	var u units
	for _, k := range order {
		a := byKey[k]
		u.user, u.kind, u.subject = append(u.user, k.user), append(u.kind, k.kind), append(u.subject, k.subject)
		u.firstAt, u.firstVariation = append(u.firstAt, a.first), append(u.firstVariation, a.firstV)
		u.minVariation, u.maxVariation = append(u.minVariation, a.minV), append(u.maxVariation, a.maxV)
	}
	return u
}

// unitCache remembers stored unit states; nil remembers nothing.
type unitCache struct {
	mu  sync.Mutex
	max int
	m   map[unitKey]unitState
}

func scoped(project, environment string, k unitKey) unitKey {
	// Keys of one environment: prefix the user with the environment (NUL cannot occur in keys).
	k.user = project + "\x00" + environment + "\x00" + k.user
	return k
}

// filter drops the units that the remembered state shows the batch cannot change.
func (c *unitCache) filter(project, environment string, u units) units {
	if c == nil || u.len() == 0 {
		return u
	}
	var out units
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range u.user {
		st, ok := c.m[scoped(project, environment, unitKey{u.user[i], u.kind[i], u.subject[i]})]
		if ok && !u.firstAt[i].Before(st.first) &&
			(st.multiple || (u.minVariation[i] == st.variation && u.maxVariation[i] == st.variation)) {
			continue
		}
		out.user, out.kind, out.subject = append(out.user, u.user[i]), append(out.kind, u.kind[i]), append(out.subject, u.subject[i])
		out.firstAt, out.firstVariation = append(out.firstAt, u.firstAt[i]), append(out.firstVariation, u.firstVariation[i])
		out.minVariation, out.maxVariation = append(out.minVariation, u.minVariation[i]), append(out.maxVariation, u.maxVariation[i])
	}
	return out
}

// remember records committed unit states; when full, it forgets about half (arbitrary) entries.
func (c *unitCache) remember(project, environment string, rows []unitRow) {
	if c == nil || len(rows) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(rows) > c.max {
		n := 0
		for k := range c.m {
			delete(c.m, k)
			if n++; n >= len(c.m) {
				break
			}
		}
	}
	for _, r := range rows {
		c.m[scoped(project, environment, r.key)] = r.state
	}
}
