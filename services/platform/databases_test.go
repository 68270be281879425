package platform_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// The migrations and the projections work on TimescaleDB (native, else WASM: the log says) and on plain
// PostgreSQL (the real server), and migrate down and up again cleanly.
func TestMigrationsAndProjectionsOnBothDatabases(t *testing.T) {
	t.Parallel()
	for _, db := range []struct {
		name      string
		url       func(testing.TB) string
		timescale bool
	}{
		{"postgresql", pgtest.NewDatabase, false},
		{"timescaledb", pgtest.NewTimescale, true},
	} {
		t.Run(db.name, func(t *testing.T) {
			url := db.url(t)
			m, err := postgres.NewMigrator(url)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Up(); err != nil {
				t.Fatal(err)
			}
			if err := m.DownAll(); err != nil {
				t.Fatalf("down: %v", err)
			}
			if err := m.Up(); err != nil {
				t.Fatalf("up again: %v", err)
			}
			v, dirty, err := m.Version()
			if err != nil || dirty || v != postgres.LatestMigration() {
				t.Fatalf("version %d dirty %v err %v, want %d", v, dirty, err, postgres.LatestMigration())
			}
			m.Close()

			ctx := context.Background()
			pool, err := postgres.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			var hasTimescale bool
			if err := pool.QueryRow(ctx, `SELECT vexil_has_timescale()`).Scan(&hasTimescale); err != nil {
				t.Fatal(err)
			}
			if hasTimescale != db.timescale {
				t.Fatalf("vexil_has_timescale() = %v on %s", hasTimescale, db.name)
			}
			// The storage detection agrees, and on TimescaleDB the upgrade finds nothing to convert.
			storage, err := postgres.DetectStorage(ctx, pool)
			if err != nil || (storage.Mode == postgres.ModeTimescale) != db.timescale || storage.Advice() != "" {
				t.Fatalf("storage on %s: %+v %v", db.name, storage, err)
			}
			if db.timescale {
				if steps, err := postgres.UpgradeToTimescale(ctx, pool); err != nil || len(steps) != 0 {
					t.Fatalf("upgrade of a fresh TimescaleDB migration: %v %v, want nothing to do", steps, err)
				}
			}

			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			store, err := postgres.NewEventStore(pool, postgres.WithInlineProjections(access.Projection{}))
			if err != nil {
				t.Fatal(err)
			}
			a, err := app.New(app.Config{Store: store, Pool: pool, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			res, err := platform.SeedDemo(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			runner, err := projector.New(projector.Config{Pool: pool, Store: store, Projections: platform.ReadModels(), Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := runner.CatchUp(ctx, ""); err != nil {
				t.Fatal(err)
			}
			var flags, rulesetFlags, audits, keys int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rm_flags WHERE project = 'demo'),
				(SELECT count(*) FROM rm_ruleset_flags WHERE project = 'demo' AND environment = 'production'),
				(SELECT count(*) FROM rm_audit_log), (SELECT count(*) FROM rm_sdk_keys)`).Scan(&flags, &rulesetFlags, &audits, &keys); err != nil {
				t.Fatal(err)
			}
			var events int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
				t.Fatal(err)
			}
			if flags != len(res.Flags) || rulesetFlags != len(res.Flags) || audits != events || keys != 2*len(res.Environments) {
				t.Fatalf("read models: %d flags, %d ruleset flags, %d audit rows for %d events, %d SDK keys", flags, rulesetFlags, audits, events, keys)
			}
			// A second catch-up applies nothing twice.
			if err := runner.CatchUp(ctx, ""); err != nil {
				t.Fatal(err)
			}
			var audits2 int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM rm_audit_log`).Scan(&audits2); err != nil || audits2 != audits {
				t.Fatalf("catch-up twice: %d then %d audit rows (%v)", audits, audits2, err)
			}
			k, err := access.LookupSDKKey(ctx, pool, res.Environments[0].ServerKey)
			if err != nil || k.Kind != domain.ServerSideKey || k.Project != "demo" {
				t.Fatalf("lookup server key: %+v %v", k, err)
			}
		})
	}
}
