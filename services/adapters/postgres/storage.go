package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Storage modes of a Vexil database.
const (
	ModeTimescale = "timescaledb" // hypertables and continuous aggregates
	ModePlain     = "postgresql"  // ordinary tables and materialized views the projector refreshes
)

// PreloadSetting is the line postgresql.conf needs before TimescaleDB can be used (then restart
// PostgreSQL). When the server already preloads other libraries, add timescaledb to their list.
const PreloadSetting = "shared_preload_libraries = 'timescaledb'"

// timescaleGains says what a plain-mode database misses, in the advice an operator reads.
const timescaleGains = "hypertables with compression and retention by chunk, real-time continuous " +
	"aggregates refreshed incrementally (hour rollups kept 400 days, day rollups forever) instead of " +
	"materialized views recomputed from the raw events"

// sqlTimescaleLoadable is migration 0001's question: can this session use TimescaleDB without
// being killed? CREATE EXTENSION on a server that has the files but does not preload the library
// answers FATAL and closes the session, so the answer is yes only when the extension already
// exists here, the server preloads it, or the server is a single-process WASM build (PGlite) that
// loads libraries on demand.
const sqlTimescaleLoadable = `EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
  OR current_setting('shared_preload_libraries') ~ '` + PreloadPattern + `'
  OR version() ILIKE '%emscripten%'`

// PreloadPattern matches a shared_preload_libraries value that names TimescaleDB's loader
// (current_setting gives the list without its outer quotes: "pg_stat_statements, timescaledb").
// Migration 0001 holds the same pattern.
const PreloadPattern = `(^|,)\s*"?([$]libdir/)?timescaledb"?\s*(,|$)`

// Storage is what the database server offers Vexil's telemetry storage and what the database
// uses.
type Storage struct {
	PostgresVersion    string // server_version
	TimescaleVersion   string // of the extension created in this database, or "" when none
	TimescaleInstalled bool   // the server has the extension's files (pg_available_extensions)
	TimescaleLoadable  bool   // ... and can load it: preloaded, already created, or a WASM build
	// Mode is ModeTimescale when the telemetry tables are hypertables (vexil_has_timescale()),
	// else ModePlain; "" before the migrations ran.
	Mode string
}

// DetectStorage asks the server and the database. It never loads TimescaleDB.
func DetectStorage(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (Storage, error) {
	var s Storage
	var migrated bool
	err := db.QueryRow(ctx, `SELECT split_part(current_setting('server_version'), ' ', 1),
		  coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), ''),
		  EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
		  `+sqlTimescaleLoadable+`,
		  to_regprocedure('vexil_has_timescale()') IS NOT NULL`).
		Scan(&s.PostgresVersion, &s.TimescaleVersion, &s.TimescaleInstalled, &s.TimescaleLoadable, &migrated)
	if err != nil {
		return Storage{}, fmt.Errorf("postgres: detect storage: %w", err)
	}
	s.TimescaleLoadable = s.TimescaleLoadable && s.TimescaleInstalled
	if !migrated {
		return s, nil
	}
	var ts bool
	if err := db.QueryRow(ctx, `SELECT vexil_has_timescale()`).Scan(&ts); err != nil {
		return Storage{}, fmt.Errorf("postgres: vexil_has_timescale(): %w", err)
	}
	s.Mode = ModePlain
	if ts {
		s.Mode = ModeTimescale
	}
	return s, nil
}

// Advice is what an operator should do about the storage, or "" when nothing: TimescaleDB
// installed but not preloaded, or loadable but this database still in plain mode.
func (s Storage) Advice() string {
	switch {
	case s.Mode == ModeTimescale || !s.TimescaleInstalled:
		return ""
	case !s.TimescaleLoadable:
		return "TimescaleDB is installed on this PostgreSQL server but not preloaded, so Vexil runs on plain " +
			"PostgreSQL (creating the extension now would end the session). TimescaleDB would give " + timescaleGains +
			". To use it: add " + PreloadSetting + " to postgresql.conf (add timescaledb to the list if other " +
			"libraries are preloaded), restart PostgreSQL, then run: vexil migrate timescale"
	default:
		return "TimescaleDB can be loaded on this PostgreSQL server but this database was migrated on plain " +
			"PostgreSQL. Run vexil migrate timescale to convert it (existing data is kept): " + timescaleGains
	}
}

// Summary is one line for /readyz: the mode and, when there is one, the advice.
func (s Storage) Summary() string {
	mode := "plain PostgreSQL " + s.PostgresVersion
	if s.Mode == ModeTimescale {
		mode = "TimescaleDB " + s.TimescaleVersion + " on PostgreSQL " + s.PostgresVersion
	}
	if a := s.Advice(); a != "" {
		return mode + ": " + a
	}
	return mode
}

// ErrTimescaleUnavailable is returned by UpgradeToTimescale when the server cannot load
// TimescaleDB.
var ErrTimescaleUnavailable = errors.New("TimescaleDB cannot be used on this server")

// UpgradeToTimescale converts a database migrated on plain PostgreSQL into hypertables and
// continuous aggregates (migration 0050's vexil_timescale_upgrade()): it creates the extension
// and converts in one transaction, so a failure leaves the plain database as it was. It is
// idempotent: on a converted database it returns no steps. The aggregates are created empty
// (their real-time part reads the raw events at once); refresh them afterwards. The database must
// be migrated to the latest version.
//
// It refuses with ErrTimescaleUnavailable, before touching anything, when the server has no
// TimescaleDB or does not preload it.
func UpgradeToTimescale(ctx context.Context, pool *pgxpool.Pool) (steps []string, err error) {
	s, err := DetectStorage(ctx, pool)
	if err != nil {
		return nil, err
	}
	switch {
	case !s.TimescaleInstalled:
		return nil, fmt.Errorf("%w: the timescaledb extension is not installed on this PostgreSQL %s server", ErrTimescaleUnavailable, s.PostgresVersion)
	case !s.TimescaleLoadable:
		return nil, fmt.Errorf("%w: it is installed but not preloaded; add %s to postgresql.conf, restart PostgreSQL and run this again",
			ErrTimescaleUnavailable, PreloadSetting)
	case s.Mode == "":
		return nil, errors.New("postgres: the database is not migrated: run vexil migrate up first")
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS timescaledb`); err != nil {
			return fmt.Errorf("create extension timescaledb: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT step FROM vexil_timescale_upgrade() AS step`)
		if err != nil {
			return err
		}
		steps, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42883" { // undefined_function
			return nil, errors.New("postgres: the database is not migrated to the latest version: run vexil migrate up first")
		}
		return nil, fmt.Errorf("postgres: upgrade to TimescaleDB (nothing was changed): %w", err)
	}
	return steps, nil
}
