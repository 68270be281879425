package postgres_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/migrations"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// The preload question reads shared_preload_libraries as PostgreSQL gives it, and migration 0001
// asks it with the same pattern.
func TestPreloadPattern(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for setting, want := range map[string]bool{
		"timescaledb":                                   true,
		"pg_stat_statements,timescaledb":                true,
		"timescaledb, pg_stat_statements":               true,
		"pg_stat_statements, timescaledb ,auto_explain": true,
		`"timescaledb"`:                                 true,
		"$libdir/timescaledb":                           true,
		"":                                              false,
		"pg_stat_statements":                            false,
		"timescaledb_osm":                               false,
		"pg_stat_statements,timescaledb_toolkit":        false,
		"not_timescaledb":                               false,
	} {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT $1::text ~ '`+postgres.PreloadPattern+`'`, setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("shared_preload_libraries = %q: preloads TimescaleDB %v, want %v", setting, got, want)
		}
	}
	sql, err := fs.ReadFile(migrations.FS, "0001_event_store.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sql), "current_setting('shared_preload_libraries') ~ '"+postgres.PreloadPattern+"'") {
		t.Fatalf("migration 0001 does not ask the preload question with postgres.PreloadPattern")
	}
}

// On a server without TimescaleDB (the shared plain PostgreSQL) the storage is plain with nothing
// to advise, and the upgrade refuses without touching the database.
func TestStorageOnPlainPostgreSQL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := mustOpen(t)
	s, err := postgres.DetectStorage(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if s.TimescaleInstalled {
		t.Skip("the shared PostgreSQL server has TimescaleDB installed: this test is about a server without it")
	}
	if s.Mode != postgres.ModePlain || s.TimescaleLoadable || s.TimescaleVersion != "" || s.Advice() != "" ||
		!strings.HasPrefix(s.Summary(), "plain PostgreSQL ") || s.PostgresVersion == "" {
		t.Fatalf("storage %+v, summary %q: want plain PostgreSQL with no advice", s, s.Summary())
	}
	steps, err := postgres.UpgradeToTimescale(ctx, pool)
	if !errors.Is(err, postgres.ErrTimescaleUnavailable) || len(steps) != 0 || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("upgrade without TimescaleDB: %v %v, want ErrTimescaleUnavailable (not installed)", steps, err)
	}
	var kind string
	if err := pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'evaluations_per_hour'::regclass`).Scan(&kind); err != nil || kind != "r" {
		t.Fatalf("evaluations_per_hour is %q (%v) after a refused upgrade, want the plain table (r) of migration 0060", kind, err)
	}
}

// Before the migrations ran there is no mode yet, and the upgrade says to migrate first.
func TestStorageBeforeMigrations(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.DetectStorage(ctx, pool)
	if err != nil || s.Mode != "" {
		t.Fatalf("storage of an empty database: %+v %v, want no mode", s, err)
	}
}
