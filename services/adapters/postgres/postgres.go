// Package postgres adapts PostgreSQL (and TimescaleDB) for Vexil: connection pools, database
// creation, migrations, the event store with its outbox, and translation of driver errors into
// domain errors.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultConnectTimeout bounds a connection attempt when the URL sets no connect_timeout. pgx
// waits for ever by default: with the database's host unreachable (packets dropped, not
// refused), every request would hang on the pool instead of answering 503.
const DefaultConnectTimeout = 5 * time.Second

// Open connects a pool to databaseURL and checks the connection.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: ping %s: %w", redact(databaseURL), err)
	}
	return pool, nil
}

// withoutPoolParams returns u without the pool_* query parameters (pool_max_conns, ...). They
// configure pgxpool, which removes them before connecting; a single pgx connection (creating
// the database, the migrator) would send them to the server as run-time settings, which it
// refuses. The same URL configures both, so the single connections drop them.
func withoutPoolParams(u *url.URL) *url.URL {
	out := *u
	q := out.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	out.RawQuery = q.Encode()
	return &out
}

// EnsureDatabase creates the database named in databaseURL when it does not exist, connecting to
// the server's "postgres" database to do so. It lets `vexil serve` work on a fresh machine with no
// configuration.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("postgres: parse database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return nil
	}
	u = withoutPoolParams(u)
	conn, err := pgx.Connect(ctx, u.String())
	if err == nil {
		conn.Close(ctx)
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("postgres: connect %s: %w", redact(databaseURL), err)
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err = pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("postgres: connect to create database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created concurrently
			return nil
		}
		return fmt.Errorf("postgres: create database %q: %w", name, err)
	}
	return nil
}

// redact hides the password of a database URL for logs and errors.
func redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}
