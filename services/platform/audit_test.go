package platform_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/platform"
)

// seededStore migrates a fresh database and seeds the demo project.
func seededStore(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewMigratedDatabase(t)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store, err := postgres.NewEventStore(pool, postgres.WithInlineProjections(access.Projection{}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := platform.SeedDemo(ctx, a); err != nil {
		t.Fatal(err)
	}
	return url, pool
}

// verify runs `vexil audit verify` and returns its output and error.
func verify(t *testing.T, url string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := (&platform.Main{Stdout: &out, Stderr: io.Discard, Lookup: func(string) (string, bool) { return "", false }}).
		Run(context.Background(), []string{"audit", "verify", "--database-url", url})
	return out.String(), err
}

func TestEventStoreIsAppendOnlyAndTamperEvident(t *testing.T) {
	t.Parallel()
	url, pool := seededStore(t)
	ctx := context.Background()
	out, err := verify(t, url)
	if err != nil || !strings.Contains(out, `"problems": []`) {
		t.Fatalf("a clean store: %v\n%s", err, out)
	}
	// The application's role cannot change history.
	for _, sql := range []string{
		`UPDATE events SET data = '{}' WHERE version = 1`,
		`DELETE FROM events WHERE version = 2`,
		`TRUNCATE events`,
	} {
		if _, err := pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Someone with superuser rights edits one event by hand, bypassing the triggers.
	tamper := func(sql string) {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = conn.Exec(ctx, `SET session_replication_role = origin`) }()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tamper(`UPDATE events SET data = jsonb_set(data, '{on}', 'false') WHERE stream_id = 'flag/demo/payments-enabled' AND version = 2`)
	out, err = verify(t, url)
	if !errors.Is(err, platform.ErrVerificationFailed) || !strings.Contains(out, `"stream_id": "flag/demo/payments-enabled"`) {
		t.Fatalf("an edited event went unnoticed: %v\n%s", err, out)
	}
}

func TestAuditVerifyDetectsRemovedAndReorderedEvents(t *testing.T) {
	t.Parallel()
	for name, sql := range map[string]string{
		"removed":   `DELETE FROM events WHERE stream_id = 'flag/demo/ui-theme' AND version = 2`,
		"reordered": `UPDATE events SET version = CASE version WHEN 2 THEN 3 ELSE 2 END WHERE stream_id = 'flag/demo/ui-theme' AND version IN (2, 3)`,
		"forged":    `UPDATE events SET data = '{"environment":"production","on":false}', hash = sha256(hash) WHERE stream_id = 'flag/demo/ui-theme' AND version = 2`,
	} {
		t.Run(name, func(t *testing.T) {
			url, pool := seededStore(t)
			ctx := context.Background()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `ALTER TABLE events DROP CONSTRAINT events_stream_version`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
			conn.Release()
			out, err := verify(t, url)
			if !errors.Is(err, platform.ErrVerificationFailed) || !strings.Contains(out, "flag/demo/ui-theme") {
				t.Fatalf("%s event went unnoticed: %v\n%s", name, err, out)
			}
		})
	}
}
