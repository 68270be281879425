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

// Cluster is a PostgreSQL server of one test's own: its data directory in the test's temporary
// directory, its own port on loopback, trust authentication. Tests that take the database down
// (outages, crashes) use it, never the shared server. It is stopped when the test ends.
type Cluster struct {
	tb   testing.TB
	dir  string // data directory
	port int
	cred *syscall.Credential // who runs the server programs: initdb refuses to run as root
	log  string
}

// StartCluster initialises and starts a cluster. When the test runs as root (CI containers do)
// the server programs run as the postgres user (or VEXIL_TEST_PG_USER), which owns the data
// directory; PostgreSQL refuses to run as root.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	root := tb.TempDir()
	c := &Cluster{tb: tb, dir: filepath.Join(root, "data"), log: filepath.Join(root, "server.log")}
	if os.Geteuid() == 0 {
		name := os.Getenv("VEXIL_TEST_PG_USER")
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			tb.Fatalf("pgtest: running as root, the cluster needs an unprivileged user: %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The server user must reach its data directory through the test's temporary directories
		// (created 0700 for root) and write its log beside it.
		for d := root; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				tb.Fatalf("pgtest: %v", err)
			}
		}
		if err := os.Chown(root, int(uid), int(gid)); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	c.run("initdb", "-D", c.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C")
	c.port = freePort(tb)
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nfsync = off\n"+
		"max_connections = 60\nshared_buffers = 16MB\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	c.Start()
	tb.Cleanup(func() {
		// Best effort: the test may have stopped it already.
		cmd := c.command("pg_ctl", "stop", "-D", c.dir, "-m", "immediate", "-w")
		_ = cmd.Run()
	})
	return c
}

// URL is the connection URL of database name on the cluster.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Start starts the server on its port and waits until it accepts connections.
func (c *Cluster) Start() {
	c.tb.Helper()
	c.run("pg_ctl", "start", "-D", c.dir, "-l", c.log, "-w", "-t", "60")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		if time.Now().After(deadline) {
			c.tb.Fatalf("pgtest: cluster on port %d does not accept connections: %v", c.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server at once, as a crash or a lost host would: every connection is cut and
// nothing is flushed politely (pg_ctl stop -m immediate).
func (c *Cluster) Stop() {
	c.tb.Helper()
	c.run("pg_ctl", "stop", "-D", c.dir, "-m", "immediate", "-w", "-t", "60")
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(ClusterBinDir(), name), args...)
	cmd.Dir = filepath.Dir(c.dir)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) run(name string, args ...string) {
	c.tb.Helper()
	out, err := c.command(name, args...).CombinedOutput()
	if err != nil {
		logText, _ := os.ReadFile(c.log)
		c.tb.Fatalf("pgtest: %s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, logText)
	}
}

// freePort asks the kernel for a free loopback port. Another process could take it before the
// server binds it; the server would then fail to start, loudly.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
