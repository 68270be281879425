package pgtest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// ClusterBinDir holds the PostgreSQL server programs (initdb, pg_ctl): VEXIL_TEST_PG_BIN, else
// Debian's PostgreSQL 15, else the newest version Debian installed.
func ClusterBinDir() string {
	if d := os.Getenv("VEXIL_TEST_PG_BIN"); d != "" {
		return d
	}
	const preferred = "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(preferred, "initdb")); err == nil {
		return preferred
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := preferred, 0
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if _, statErr := os.Stat(filepath.Join(d, "initdb")); err == nil && statErr == nil && v > bestVersion {
			best, bestVersion = d, v
		}
	}
	return best
}

// StartCluster starts a server of the test's own (see Server) from the machine's PostgreSQL
// installation (ClusterBinDir), for tests that take the database down.
func StartCluster(tb testing.TB) *Server {
	tb.Helper()
	return StartServer(tb, ClusterBinDir())
}
