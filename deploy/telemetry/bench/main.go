// Command bench measures the telemetry flow on this machine (see deploy/telemetry/README.md):
//
//	bench ingest  [-duration 60s -connections 8 -batch 100 ...]   HTTP -> Redis -> projector -> table, vs direct inserts
//	bench sigkill [-events 1000000 ...]                           SIGKILL the projector mid-run; count rows
//	bench query   [-rows 50000000 ...]                            30-day hourly stats from the rollups vs a raw scan
//
// Each run uses a fresh database (dropped first) on the PostgreSQL server of -admin-url and a
// fresh stream prefix on Redis, starts the platform's pieces in-process on loopback (the
// projector of `sigkill` runs as a child process: a real `vexil serve --roles projector`), and
// prints its figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench ingest|sigkill|query [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "ingest":
		err = runIngest(os.Args[2:])
	case "sigkill":
		err = runSigkill(os.Args[2:])
	case "query":
		err = runQuery(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// common flags of every mode.
type common struct {
	adminURL string
	database string
	redisURL string
	verbose  bool
}

func (c *common) register(fs *flag.FlagSet, database string) {
	fs.StringVar(&c.adminURL, "admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (a database to connect to for CREATE DATABASE)")
	fs.StringVar(&c.database, "database", database, "name of the benchmark database (dropped and created)")
	fs.StringVar(&c.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	fs.BoolVar(&c.verbose, "v", false, "platform logs (warnings) on stderr")
}

func (c *common) logger() *slog.Logger {
	if c.verbose {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freshDatabase drops and creates the benchmark database and returns its URL.
func (c *common) freshDatabase(ctx context.Context, _ string) (string, error) {
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{c.database}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return c.freshURL()
}

// freshURL is the URL of the benchmark database.
func (c *common) freshURL() (string, error) {
	u, err := url.Parse(c.adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + c.database
	return u.String(), nil
}

func prefix(mode string) string {
	return fmt.Sprintf("vexilbench-%s-%d", mode, time.Now().UnixNano())
}

// machine describes the load on the machine, printed beside every figure.
func machine() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return "load average " + strings.Join(f[:3], " ")
}
