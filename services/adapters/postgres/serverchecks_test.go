package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// The start-up checks say what to change: worker limits counted from the schedulers and the jobs,
// versions outside the matrix, the PostgreSQL 15.20 job issue; and nothing on a sound server.
func TestServerSettingsWarnings(t *testing.T) {
	sound := postgres.ServerSettings{PostgresVersionNum: 160004, PostgresVersion: "16.4", TimescaleVersion: "2.17.2",
		TimescaleCreated: true, MaxWorkerProcesses: 32, MaxBackgroundWorkers: 24, TimescaleDatabases: 2, Jobs: 20}
	for _, tc := range []struct {
		name   string
		change func(*postgres.ServerSettings)
		want   [][]string // one warning per entry, each containing these words
	}{
		{"sound", func(*postgres.ServerSettings) {}, nil},
		{"plain PostgreSQL 14", func(s *postgres.ServerSettings) {
			*s = postgres.ServerSettings{PostgresVersionNum: 140011, PostgresVersion: "14.11", MaxWorkerProcesses: 8, MaxBackgroundWorkers: -1}
		}, nil},
		{"plain PostgreSQL 13", func(s *postgres.ServerSettings) {
			*s = postgres.ServerSettings{PostgresVersionNum: 130015, PostgresVersion: "13.15", MaxWorkerProcesses: 8, MaxBackgroundWorkers: -1}
		}, [][]string{{"PostgreSQL 13.15 is older than Vexil supports"}}},
		{"PostgreSQL 18", func(s *postgres.ServerSettings) { s.PostgresVersionNum, s.PostgresVersion = 180001, "18.1" },
			[][]string{{"newer than Vexil was tested with"}}},
		{"TimescaleDB on PostgreSQL 14", func(s *postgres.ServerSettings) { s.PostgresVersionNum, s.PostgresVersion = 140011, "14.11" },
			[][]string{{"TimescaleDB on PostgreSQL 14.11 is outside"}}},
		{"TimescaleDB 2.11", func(s *postgres.ServerSettings) { s.TimescaleVersion = "2.11.2" }, [][]string{{"TimescaleDB 2.11.2 is outside"}}},
		{"TimescaleDB 3", func(s *postgres.ServerSettings) { s.TimescaleVersion = "3.0.0" }, [][]string{{"TimescaleDB 3.0.0 is outside"}}},
		{"PostgreSQL 15.20", func(s *postgres.ServerSettings) { s.PostgresVersionNum, s.PostgresVersion = 150020, "15.20" },
			[][]string{{"15.20", "rollup-refresh auto"}}},
		// The case: PostgreSQL's defaults, two Vexil databases.
		{"defaults, two databases", func(s *postgres.ServerSettings) { s.MaxWorkerProcesses, s.MaxBackgroundWorkers = 8, 16 },
			[][]string{{"timescaledb.max_background_workers = 16 is too few", "at least 22"}, {"max_worker_processes = 8", "(17)"}}},
		{"workers for the schedulers only", func(s *postgres.ServerSettings) { s.MaxBackgroundWorkers, s.TimescaleDatabases = 4, 3 },
			[][]string{{"= 4 is too few", "3 TimescaleDB database(s)", "at least 23"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sound
			tc.change(&s)
			got := s.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("%d warnings, want %d: %q", len(got), len(tc.want), got)
			}
			for i, words := range tc.want {
				for _, w := range words {
					if !strings.Contains(got[i], w) {
						t.Errorf("warning %q does not say %q", got[i], w)
					}
				}
			}
		})
	}
}

// On the native server the settings are read as the start-up checks see them: Vexil's 20 jobs,
// the scheduler of this database, the worker limits of ../shared/timescaledb/start, and the
// PostgreSQL 15.20 warning.
func TestReadServerSettingsOnNativeTimescale(t *testing.T) {
	url := pgtest.NewNativeTimescale(t)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.ReadServerSettings(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !s.TimescaleCreated || s.Jobs != postgres.VexilJobsPerDatabase || s.TimescaleDatabases < 1 || s.MaxBackgroundWorkers <= 0 ||
		s.MaxWorkerProcesses <= s.MaxBackgroundWorkers || !strings.HasPrefix(s.TimescaleVersion, "2.") {
		t.Fatalf("settings %+v", s)
	}
	t.Logf("native server: %+v; warnings %q", s, s.Warnings())
	if s.PostgresVersionNum == 150020 && !strings.Contains(strings.Join(s.Warnings(), "\n"), "PostgreSQL 15.20 records every TimescaleDB job as failed") {
		t.Fatalf("no 15.20 job issue warning in %q", s.Warnings())
	}
}
