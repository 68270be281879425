package pgtest

import (
	"testing"

	"github.com/vexil-flags/vexil/services/postgres"
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
