// Package replay rebuilds every read model from the event store: into a fresh schema, with the
// same projection code the projector runs, then either swaps the rebuilt tables in for the live
// ones (without interrupting SDK serving, which evaluates from memory) or compares the two and
// reports every difference.
package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// Schema receives the rebuilt read models.
const Schema = "vexil_replay"

// retiredSchema receives the live tables a swap replaces, kept until the next replay for
// inspection.
const retiredSchema = "vexil_replaced"

// Replayer rebuilds the read models of its projections.
type Replayer struct {
	DatabaseURL string
	Projections []projections.Projection
	Log         *slog.Logger
}

// Result summarizes a replay.
type Result struct {
	Streams  int           `json:"streams"`
	Events   int64         `json:"events"`
	Duration time.Duration `json:"duration_ns"`
	Tables   []string      `json:"tables"`
}

// Difference is one row present on one side only (after ignoring volatile columns).
type Difference struct {
	Table string `json:"table"`
	Side  string `json:"side"` // "live only" or "replay only"
	Row   string `json:"row"`
}

func (r *Replayer) owners() ([]projections.TableOwner, []string, error) {
	var owners []projections.TableOwner
	var tables []string
	for _, p := range r.Projections {
		o, ok := p.(projections.TableOwner)
		if !ok {
			return nil, nil, fmt.Errorf("replay: projection %s does not declare its tables", p.Name())
		}
		owners = append(owners, o)
		tables = append(tables, o.Tables()...)
	}
	return owners, tables, nil
}

func (r *Replayer) names() []string {
	out := make([]string, len(r.Projections))
	for i, p := range r.Projections {
		out[i] = p.Name()
	}
	return out
}

// Rebuild creates Schema afresh with empty copies of the read-model tables and the checkpoint
// table, and applies every stream of the event store to them.
func (r *Replayer) Rebuild(ctx context.Context) (*Result, error) {
	start := time.Now()
	_, tables, err := r.owners()
	if err != nil {
		return nil, err
	}
	admin, err := postgres.Open(ctx, r.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ddl := []string{`DROP SCHEMA IF EXISTS ` + Schema + ` CASCADE`, `CREATE SCHEMA ` + Schema}
	for _, t := range append(append([]string{}, tables...), "projection_checkpoints") {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE %s.%s (LIKE public.%s INCLUDING ALL)`, Schema, t, t))
	}
	for _, stmt := range ddl {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("replay: prepare schema: %s: %w", stmt, err)
		}
	}
	// The same projection code writes unqualified table names: a pool whose search path starts
	// with the replay schema makes them land there, while events are still read from public.
	cfg, err := pgxpool.ParseConfig(r.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = Schema + ",public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replay: open pool: %w", err)
	}
	defer pool.Close()
	store, err := postgres.NewEventStore(pool)
	if err != nil {
		return nil, err
	}
	runner, err := projector.New(projector.Config{Pool: pool, Store: store, Projections: r.Projections, Logger: r.Log, SkipCatchUp: true})
	if err != nil {
		return nil, err
	}
	res := &Result{Tables: tables}
	if err := admin.QueryRow(ctx, `SELECT count(DISTINCT stream_id), count(*) FROM public.events`).Scan(&res.Streams, &res.Events); err != nil {
		return nil, fmt.Errorf("replay: count events: %w", err)
	}
	if err := runner.CatchUp(ctx, ""); err != nil {
		return nil, fmt.Errorf("replay: apply events: %w", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// Swap replaces the live read-model tables with the rebuilt ones in one transaction, then lets
// the caller catch the live tables up with anything appended meanwhile (run the projector's
// catch-up). The replaced tables stay in schema vexil_replaced until the next swap.
func (r *Replayer) Swap(ctx context.Context) error {
	_, tables, err := r.owners()
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, r.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+retiredSchema+` CASCADE`); err != nil {
		return fmt.Errorf("replay: drop %s: %w", retiredSchema, err)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		stmts := []string{`CREATE SCHEMA ` + retiredSchema}
		// Lock the live tables so a running projector's transaction finishes first and the next
		// waits for the swap.
		stmts = append(stmts, `LOCK TABLE `+strings.Join(qualify("public", tables), ", ")+` IN ACCESS EXCLUSIVE MODE`)
		for _, t := range tables {
			stmts = append(stmts,
				fmt.Sprintf(`ALTER TABLE public.%s SET SCHEMA %s`, t, retiredSchema),
				fmt.Sprintf(`ALTER TABLE %s.%s SET SCHEMA public`, Schema, t))
		}
		// Checkpoints: the rows of the replayed projections move; other consumers' rows stay.
		stmts = append(stmts,
			`DELETE FROM public.projection_checkpoints WHERE projection = ANY($1)`,
			`INSERT INTO public.projection_checkpoints SELECT * FROM `+Schema+`.projection_checkpoints WHERE projection = ANY($1)`,
			`DROP SCHEMA `+Schema+` CASCADE`)
		for _, stmt := range stmts {
			var err error
			if strings.Contains(stmt, "$1") {
				_, err = tx.Exec(ctx, stmt, r.names())
			} else {
				_, err = tx.Exec(ctx, stmt)
			}
			if err != nil {
				return fmt.Errorf("replay: swap: %s: %w", stmt, err)
			}
		}
		return nil
	})
}

func qualify(schema string, tables []string) []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = schema + "." + t
	}
	return out
}

// ErrLagging means the live read models had not applied every event when verify compared them,
// so differences may be lag rather than corruption.
var ErrLagging = errors.New("the live read models lag behind the event store")

// Verify compares the rebuilt tables in Schema with the live ones, ignoring volatile columns, and
// returns up to limit differences per table. Call Rebuild first.
func (r *Replayer) Verify(ctx context.Context, limit int) ([]Difference, error) {
	owners, _, err := r.owners()
	if err != nil {
		return nil, err
	}
	pool, err := postgres.Open(ctx, r.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var behind int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+Schema+`.projection_checkpoints r
		LEFT JOIN public.projection_checkpoints l USING (projection, stream_id)
		WHERE r.projection = ANY($1) AND coalesce(l.version, 0) <> r.version`, r.names()).Scan(&behind); err != nil {
		return nil, fmt.Errorf("replay: compare checkpoints: %w", err)
	}
	if behind > 0 {
		return nil, fmt.Errorf("%w: %d stream checkpoints differ; let the projector catch up and verify again", ErrLagging, behind)
	}
	var diffs []Difference
	for _, o := range owners {
		volatile := o.VolatileColumns()
		for _, t := range o.Tables() {
			cols, err := columns(ctx, pool, t, volatile[t])
			if err != nil {
				return nil, err
			}
			list := strings.Join(cols, ", ")
			for _, side := range []struct{ name, a, b string }{{"live only", "public", Schema}, {"replay only", Schema, "public"}} {
				q := fmt.Sprintf(`SELECT row_to_json(d)::text FROM (SELECT %s FROM %s.%s EXCEPT ALL SELECT %s FROM %s.%s) d LIMIT %d`,
					list, side.a, t, list, side.b, t, limit)
				rows, err := pool.Query(ctx, q)
				if err != nil {
					return nil, fmt.Errorf("replay: compare %s: %w", t, err)
				}
				found, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return nil, fmt.Errorf("replay: compare %s: %w", t, err)
				}
				for _, row := range found {
					diffs = append(diffs, Difference{Table: t, Side: side.name, Row: row})
				}
			}
		}
	}
	sort.SliceStable(diffs, func(i, j int) bool { return diffs[i].Table < diffs[j].Table })
	return diffs, nil
}

// columns lists a live table's comparable columns. jsonb compares by value; json would not, so
// every column is compared as stored.
func columns(ctx context.Context, pool *pgxpool.Pool, table string, ignore []string) ([]string, error) {
	if ignore == nil {
		ignore = []string{} // = ANY(NULL) would filter out every column
	}
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND NOT (column_name = ANY($2)) ORDER BY ordinal_position`, table, ignore)
	if err != nil {
		return nil, fmt.Errorf("replay: columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("replay: columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("replay: table %s not found", table)
	}
	for i, c := range cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return cols, nil
}

// Drop removes the replay schema (after a verify).
func (r *Replayer) Drop(ctx context.Context) error {
	pool, err := postgres.Open(ctx, r.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+Schema+` CASCADE`)
	return err
}
