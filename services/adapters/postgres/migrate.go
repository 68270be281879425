package postgres

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/vexil-flags/vexil/migrations"
)

// Migrator runs Vexil's embedded migrations against one database.
type Migrator struct{ m *migrate.Migrate }

// NewMigrator opens a migrator on databaseURL (a postgres:// URL).
func NewMigrator(databaseURL string) (*Migrator, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: open embedded migrations: %w", err)
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("migrate: parse database url: %w", err)
	}
	u = withoutPoolParams(u)
	u.Scheme = "pgx5"
	m, err := migrate.NewWithSourceInstance("iofs", src, u.String())
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	return &Migrator{m: m}, nil
}

// Up applies every pending migration.
func (g *Migrator) Up() error {
	if err := g.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down rolls back n migrations, or all of them when fewer are applied (versions have gaps, so
// Down(int(LatestMigration())) rolls back everything).
func (g *Migrator) Down(n int) error {
	if n <= 0 {
		return fmt.Errorf("migrate down: steps must be positive, got %d", n)
	}
	var short migrate.ErrShortLimit
	if err := g.m.Steps(-n); err != nil && !errors.Is(err, migrate.ErrNoChange) && !errors.As(err, &short) {
		return fmt.Errorf("migrate down %d: %w", n, err)
	}
	return nil
}

// DownAll rolls back every migration.
func (g *Migrator) DownAll() error {
	if err := g.m.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down all: %w", err)
	}
	return nil
}

// Version returns the current version and whether the last migration failed halfway (dirty).
func (g *Migrator) Version() (version uint, dirty bool, err error) {
	v, d, err := g.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migrate version: %w", err)
	}
	return v, d, nil
}

// Force sets the version without running migrations, to recover from a dirty state by hand.
func (g *Migrator) Force(version int) error {
	if err := g.m.Force(version); err != nil {
		return fmt.Errorf("migrate force %d: %w", version, err)
	}
	return nil
}

// Close releases the migrator's connections.
func (g *Migrator) Close() error {
	srcErr, dbErr := g.m.Close()
	return errors.Join(srcErr, dbErr)
}

// LatestMigration is the highest version among the embedded migrations.
func LatestMigration() uint {
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		return 0
	}
	var latest uint
	for _, e := range entries {
		var v uint
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}
