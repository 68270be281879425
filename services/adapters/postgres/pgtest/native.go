package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// NativeTimescaleURL is the native TimescaleDB test server started by ../shared/timescaledb/start
// (TimescaleDB 2.28.3 on PostgreSQL 15.20, port 5433): VEXIL_TEST_TIMESCALE_URL, which CI sets
// from the script's output, else the script's default address.
func NativeTimescaleURL() string {
	if u := os.Getenv("VEXIL_TEST_TIMESCALE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable"
}

// NativeTimescaleBinDir returns the bin directory of the native TimescaleDB installation (a
// PostgreSQL whose extension directory has TimescaleDB), asked of its running server, so a test
// can run servers of its own from it. The test is skipped only when that installation is
// unavailable on this machine: CI sets VEXIL_TEST_TIMESCALE_UNAVAILABLE when the start script
// exits 2 (a PostgreSQL other than 15.20), and without VEXIL_TEST_TIMESCALE_URL a server that
// does not answer at the default address counts as unavailable. With VEXIL_TEST_TIMESCALE_URL
// set, a server that does not answer fails the test.
func NativeTimescaleBinDir(tb testing.TB) string {
	tb.Helper()
	if why := os.Getenv("VEXIL_TEST_TIMESCALE_UNAVAILABLE"); why != "" {
		tb.Skipf("native TimescaleDB installation unavailable on this machine (../shared/timescaledb/start): %s", why)
	}
	url := NativeTimescaleURL()
	_, configured := os.LookupEnv("VEXIL_TEST_TIMESCALE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		if !configured {
			tb.Skipf("native TimescaleDB installation unavailable: no server at %s (run ../shared/timescaledb/start and export VEXIL_TEST_TIMESCALE_URL): %v", url, err)
		}
		tb.Fatalf("pgtest: the native TimescaleDB server of VEXIL_TEST_TIMESCALE_URL does not answer at %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var bin string
	var available bool
	if err := conn.QueryRow(ctx, `SELECT (SELECT setting FROM pg_config WHERE name = 'BINDIR'),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')`).Scan(&bin, &available); err != nil {
		tb.Fatalf("pgtest: ask %s for its installation: %v", url, err)
	}
	if !available {
		tb.Fatalf("pgtest: the server at %s has no timescaledb extension: it is not the native TimescaleDB test server", url)
	}
	return bin
}

// Server is a PostgreSQL server of one test's own, run from the installation in binDir: its data
// directory in the test's temporary directory, its own loopback port, trust authentication, no
// Unix socket. Tests that take the database down (outages, crashes) or need a server configured
// otherwise than the shared one use it, never the shared server. It is stopped when the test ends.
type Server struct {
	tb     testing.TB
	binDir string
	Dir    string // data directory (postgresql.conf is there)
	port   int
	cred   *syscall.Credential // initdb and postgres refuse to run as root
	log    string
}

// StartServer initialises a data directory with binDir's initdb and starts the server with conf
// appended to postgresql.conf. When the test runs as root (CI does) the server programs run as
// the postgres user (or VEXIL_TEST_PG_USER), who is given the data directory.
func StartServer(tb testing.TB, binDir string, conf ...string) *Server {
	tb.Helper()
	root := tb.TempDir()
	s := &Server{tb: tb, binDir: binDir, Dir: filepath.Join(root, "data"), log: filepath.Join(root, "server.log")}
	if os.Geteuid() == 0 {
		name := os.Getenv("VEXIL_TEST_PG_USER")
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			tb.Fatalf("pgtest: running as root, the server needs an unprivileged user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The server's user must reach its directory through the test's temporary directories
		// (created 0700 for root).
		for d := root; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				tb.Fatalf("pgtest: %v", err)
			}
		}
		if err := os.Chown(root, uid, gid); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	s.run("initdb", "-D", s.Dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close() // another process could take the port first: the server would then fail loudly
	s.AppendConfig(append([]string{"listen_addresses = '127.0.0.1'", fmt.Sprintf("port = %d", s.port),
		"unix_socket_directories = ''", "fsync = off", "max_connections = 60", "shared_buffers = 16MB"}, conf...)...)
	s.Start()
	tb.Cleanup(func() { _ = s.command("pg_ctl", "stop", "-D", s.Dir, "-m", "immediate", "-w").Run() })
	return s
}

// StartNativeServer is StartServer for the native TimescaleDB installation in binDir, with its
// telemetry off.
func StartNativeServer(tb testing.TB, binDir string) *Server {
	tb.Helper()
	return StartServer(tb, binDir, "timescaledb.telemetry_level = off")
}

// URL is the connection URL of database name on the server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// AppendConfig adds lines to postgresql.conf; most take effect at the next Start.
func (s *Server) AppendConfig(lines ...string) {
	s.tb.Helper()
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + strings.Join(lines, "\n") + "\n"); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
}

// Start starts the server; pg_ctl -w returns once the server reports it accepts connections.
func (s *Server) Start() {
	s.tb.Helper()
	s.run("pg_ctl", "start", "-D", s.Dir, "-l", s.log, "-w", "-t", "120")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		logText, _ := os.ReadFile(s.log)
		s.tb.Fatalf("pgtest: server on port %d started but does not accept connections: %v\n%s", s.port, err, logText)
	}
	conn.Close(ctx)
}

// Stop shuts the server down cleanly (pg_ctl stop -m fast).
func (s *Server) Stop() {
	s.tb.Helper()
	s.run("pg_ctl", "stop", "-D", s.Dir, "-m", "fast", "-w", "-t", "120")
}

// Crash stops the server at once, as a crash or a lost host would: every connection is cut and
// nothing is flushed politely (pg_ctl stop -m immediate).
func (s *Server) Crash() {
	s.tb.Helper()
	s.run("pg_ctl", "stop", "-D", s.Dir, "-m", "immediate", "-w", "-t", "60")
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Dir = filepath.Dir(s.Dir)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) run(name string, args ...string) {
	s.tb.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		logText, _ := os.ReadFile(s.log)
		s.tb.Fatalf("pgtest: %s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, logText)
	}
}
