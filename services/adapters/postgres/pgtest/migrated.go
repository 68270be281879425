package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// NewMigratedDatabase is NewDatabase with every migration applied.
func NewMigratedDatabase(tb testing.TB) string {
	tb.Helper()
	url := NewDatabase(tb)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		tb.Fatalf("pgtest: migrator: %v", err)
	}
	defer m.Close()
	if err := m.Up(); err != nil {
		tb.Fatalf("pgtest: migrate up: %v", err)
	}
	return url
}

// NewEventStore opens a pool on a NewMigratedDatabase and an event store on it with opts; the
// pool is closed when tb ends.
func NewEventStore(tb testing.TB, opts ...postgres.Option) (*pgxpool.Pool, *postgres.EventStore) {
	tb.Helper()
	pool, err := postgres.Open(context.Background(), NewMigratedDatabase(tb))
	if err != nil {
		tb.Fatalf("pgtest: open: %v", err)
	}
	tb.Cleanup(pool.Close)
	store, err := postgres.NewEventStore(pool, opts...)
	if err != nil {
		tb.Fatalf("pgtest: event store: %v", err)
	}
	return pool, store
}
