package pgtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vexil-flags/vexil/services/testkit"
)

// Engines NewTimescale can give a test.
const (
	EngineNative = "native" // TimescaleDB on a real PostgreSQL server (../shared/timescaledb/start)
	EnginePGlite = "pglite" // PostgreSQL + TimescaleDB compiled to WASM (deploy/pglite)
)

// TimescaleEngine says which engine NewTimescale gives in this test process, and why: the
// native server when it answers, else PGlite with the reason. It asks the native server once.
// A VEXIL_TEST_TIMESCALE_URL whose server does not answer fails the test: CI set it because the
// server started, so silence there would hide a broken setup.
func TimescaleEngine(tb testing.TB) (engine, why string) {
	tb.Helper()
	engineOnce.Do(detectEngine)
	if engineErr != "" {
		tb.Fatal(engineErr)
	}
	return engineName, engineWhy
}

var (
	engineOnce sync.Once
	engineName string
	engineWhy  string
	engineErr  string
)

func detectEngine() {
	if why := os.Getenv("VEXIL_TEST_TIMESCALE_UNAVAILABLE"); why != "" {
		engineName, engineWhy = EnginePGlite, "native TimescaleDB unavailable: "+why
		return
	}
	url := NativeTimescaleURL()
	_, configured := os.LookupEnv("VEXIL_TEST_TIMESCALE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		if configured {
			engineErr = "pgtest: the native TimescaleDB server of VEXIL_TEST_TIMESCALE_URL does not answer at " + url + ": " + err.Error()
			return
		}
		engineName, engineWhy = EnginePGlite, "no native TimescaleDB server at "+url+
			" (run ../shared/timescaledb/start and export VEXIL_TEST_TIMESCALE_URL)"
		return
	}
	defer conn.Close(ctx)
	var version string
	err = conn.QueryRow(ctx, `SELECT 'TimescaleDB ' || default_version || ' on PostgreSQL ' || split_part(current_setting('server_version'), ' ', 1)
		FROM pg_available_extensions WHERE name = 'timescaledb'`).Scan(&version)
	if err != nil {
		engineErr = "pgtest: the server at " + url + " has no timescaledb extension (" + err.Error() + "): it is not the native TimescaleDB test server"
		return
	}
	engineName, engineWhy = EngineNative, version+" at "+url
}

// NewTimescale returns the URL of a fresh, empty database for tb on a TimescaleDB server: a
// database of its own on the native server when it answers (TimescaleDB's background jobs run
// there: policies start as soon as the migrations create them), else a PGlite server of its own
// (NewPGlite: one session, no background jobs). It logs which engine ran; tests that depend on
// the engine ask TimescaleEngine. The extension is available but not created (the migrations
// create it). The database is dropped when tb ends.
func NewTimescale(tb testing.TB) string {
	tb.Helper()
	engine, why := TimescaleEngine(tb)
	testkit.Figure(tb, "pgtest: TimescaleDB engine: %s (%s)", engine, why)
	if engine == EnginePGlite {
		return NewPGlite(tb)
	}
	return newDatabaseOn(tb, NativeTimescaleURL())
}

// NewNativeTimescale is NewTimescale for a test that needs TimescaleDB's background jobs (policies
// that actually run): the native server only. It skips, saying why, only where the native
// installation is unavailable on this machine (as NativeTimescaleBinDir).
func NewNativeTimescale(tb testing.TB) string {
	tb.Helper()
	engine, why := TimescaleEngine(tb)
	if engine != EngineNative {
		tb.Skipf("this test needs TimescaleDB's background jobs, which only the native server runs: %s", why)
	}
	testkit.Figure(tb, "pgtest: TimescaleDB engine: %s (%s)", engine, why)
	return newDatabaseOn(tb, NativeTimescaleURL())
}
