package pgtest_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

func newTimescalePool(t *testing.T, ctx context.Context) (*pgxpool.Pool, string) {
	t.Helper()
	start := time.Now()
	url := pgtest.NewPGlite(t)
	t.Logf("NewPGlite: %v", time.Since(start).Round(time.Millisecond))
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgxpool.New(%s): %v", url, err)
	}
	t.Cleanup(pool.Close)
	if got := pool.Config().MaxConns; got != 1 {
		t.Fatalf("pool MaxConns = %d, want 1 (from pool_max_conns in the URL)", got)
	}
	return pool, url
}

func mustExec(t *testing.T, ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, sql string, args ...any) pgconn.CommandTag {
	t.Helper()
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	return tag
}

func uuidString() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func TestTimescale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pool, _ := newTimescalePool(t, ctx)

	mustExec(t, ctx, pool, `CREATE EXTENSION IF NOT EXISTS timescaledb`)
	var version string
	if err := pool.QueryRow(ctx, `SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "2.") {
		t.Fatalf("timescaledb version %q, want 2.x", version)
	}
	t.Logf("timescaledb %s", version)

	mustExec(t, ctx, pool, `
		CREATE TABLE evaluations (
			event_id    uuid        NOT NULL,
			occurred_at timestamptz NOT NULL,
			flag_key    text        NOT NULL,
			variation   text        NOT NULL,
			user_key    text        NOT NULL
		)`)
	mustExec(t, ctx, pool, `SELECT create_hypertable('evaluations', by_range('occurred_at', INTERVAL '1 day'))`)
	mustExec(t, ctx, pool, `CREATE UNIQUE INDEX evaluations_event ON evaluations (event_id, occurred_at)`)

	// 50,000 events over 3 days (so several chunks), 10 flags, 2 variations.
	const n = 50_000
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, n)
	at := make([]time.Time, n)
	flags := make([]string, n)
	variations := make([]string, n)
	users := make([]string, n)
	wantPerFlag := map[string]int64{}
	for i := range n {
		ids[i] = uuidString()
		at[i] = base.Add(time.Duration(i) * 5 * time.Second) // 50,000 * 5 s = 69.4 h
		flags[i] = fmt.Sprintf("flag-%d", i%10)
		variations[i] = []string{"on", "off"}[i%2]
		users[i] = fmt.Sprintf("user-%d", i%1000)
		wantPerFlag[flags[i]]++
	}
	const insert = `
		INSERT INTO evaluations (event_id, occurred_at, flag_key, variation, user_key)
		SELECT e::uuid, o, f, v, u
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) AS t(e, o, f, v, u)
		ON CONFLICT (event_id, occurred_at) DO NOTHING`
	start := time.Now()
	tag := mustExec(t, ctx, pool, insert, ids, at, flags, variations, users)
	elapsed := time.Since(start)
	if tag.RowsAffected() != n {
		t.Fatalf("inserted %d rows, want %d", tag.RowsAffected(), n)
	}
	t.Logf("INSERT ... SELECT FROM unnest of %d rows: %v (%.0f rows/s)", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds())

	// Redelivery of the same batch has no effect.
	start = time.Now()
	if tag := mustExec(t, ctx, pool, insert, ids, at, flags, variations, users); tag.RowsAffected() != 0 {
		t.Fatalf("re-insert affected %d rows, want 0", tag.RowsAffected())
	}
	t.Logf("re-insert of the same %d rows (all conflicts): %v", n, time.Since(start).Round(time.Millisecond))

	var chunks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM show_chunks('evaluations')`).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	if chunks < 3 {
		t.Fatalf("%d chunks, want at least 3 (one per day)", chunks)
	}

	// A large result: every row back to the client.
	rows, err := pool.Query(ctx, `SELECT event_id::text, occurred_at FROM evaluations ORDER BY occurred_at`)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for rows.Next() {
		got++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("read %d rows back, want %d", got, n)
	}

	// Continuous aggregate, created empty and refreshed by hand (no background worker here).
	mustExec(t, ctx, pool, `
		CREATE MATERIALIZED VIEW evaluations_hourly
		WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
		SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS bucket, flag_key, variation, count(*) AS evaluations
		FROM evaluations
		GROUP BY bucket, flag_key, variation
		WITH NO DATA`)
	var total int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(evaluations), 0)::bigint FROM evaluations_hourly`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 0 {
		t.Fatalf("aggregate before refresh has %d evaluations, want 0", total)
	}
	start = time.Now()
	mustExec(t, ctx, pool, `CALL refresh_continuous_aggregate('evaluations_hourly', NULL, NULL)`)
	t.Logf("refresh_continuous_aggregate: %v", time.Since(start).Round(time.Millisecond))
	rows, err = pool.Query(ctx, `SELECT flag_key, sum(evaluations)::bigint FROM evaluations_hourly GROUP BY flag_key ORDER BY flag_key`)
	if err != nil {
		t.Fatal(err)
	}
	gotPerFlag := map[string]int64{}
	for rows.Next() {
		var flag string
		var count int64
		if err := rows.Scan(&flag, &count); err != nil {
			t.Fatal(err)
		}
		gotPerFlag[flag] = count
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(gotPerFlag) != len(wantPerFlag) {
		t.Fatalf("aggregate has %d flags, want %d", len(gotPerFlag), len(wantPerFlag))
	}
	for flag, want := range wantPerFlag {
		if gotPerFlag[flag] != want {
			t.Errorf("aggregate %s: %d evaluations, want %d", flag, gotPerFlag[flag], want)
		}
	}
	var buckets, onCount int64
	if err := pool.QueryRow(ctx, `
		SELECT count(DISTINCT bucket), coalesce(sum(evaluations) FILTER (WHERE variation = 'on'), 0)::bigint
		FROM evaluations_hourly`).Scan(&buckets, &onCount); err != nil {
		t.Fatal(err)
	}
	if wantBuckets := int64((n*5-1)/3600 + 1); buckets != wantBuckets || onCount != n/2 {
		t.Fatalf("aggregate: %d hourly buckets and %d 'on' evaluations, want %d and %d", buckets, onCount, wantBuckets, n/2)
	}
}

func TestTimescaleBatchAndTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, url := newTimescalePool(t, ctx)

	// pgx prepares every statement of a batch before it runs any, so the table must exist first.
	mustExec(t, ctx, pool, `CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL)`)

	// A pipelined batch: pgx sends every statement (Parse/Describe, then Bind/Execute, one Sync)
	// before it reads any result.
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO kv VALUES ($1, $2), ($3, $4)`, "a", 1, "b", 2)
	batch.Queue(`UPDATE kv SET v = v * 10 WHERE k = $1`, "b")
	batch.Queue(`SELECT count(*), sum(v) FROM kv`)
	batch.Queue(`SELECT k FROM kv ORDER BY k`)
	br := pool.SendBatch(ctx, batch)
	defer br.Close() // on failure too: pool.Close waits for the connection the batch holds
	if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("batch insert: %v, %v", tag, err)
	}
	if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("batch update: %v, %v", tag, err)
	}
	var count, sum int64
	if err := br.QueryRow().Scan(&count, &sum); err != nil || count != 2 || sum != 21 {
		t.Fatalf("batch select: count %d sum %d, %v; want 2 and 21", count, sum, err)
	}
	keys, err := pgx.CollectRows(mustQuery(t, br), pgx.RowTo[string])
	if err != nil || strings.Join(keys, ",") != "a,b" {
		t.Fatalf("batch keys %v, %v", keys, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// A batch with a failing statement: the error surfaces and the connection stays usable.
	batch = &pgx.Batch{}
	batch.Queue(`INSERT INTO kv VALUES ('c', 3)`)
	batch.Queue(`INSERT INTO kv VALUES ('a', 99)`) // duplicate key
	batch.Queue(`INSERT INTO kv VALUES ('d', 4)`)
	err = pool.SendBatch(ctx, batch).Close()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("batch with a duplicate key: %v, want unique_violation", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&count); err != nil || count != 2 {
		t.Fatalf("after the failed batch: %d rows, %v; want 2 (the batch is one implicit transaction)", count, err)
	}

	// A transaction rolled back leaves nothing; one committed stays.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, tx, `INSERT INTO kv VALUES ('rolled-back', 1)`)
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&count); err != nil || count != 3 {
		t.Fatalf("inside the transaction: %d rows, %v; want 3", count, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kv WHERE k = 'rolled-back'`).Scan(&count); err != nil || count != 0 {
		t.Fatalf("after rollback: %d rows, %v; want 0", count, err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kv VALUES ('committed', 1)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kv WHERE k = 'committed'`).Scan(&count); err != nil || count != 1 {
		t.Fatalf("after commit: %d rows, %v; want 1", count, err)
	}

	// COPY FROM STDIN is refused with an error instead of killing the server.
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"kv"}, []string{"k", "v"}, pgx.CopyFromRows([][]any{{"x", 1}}))
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		t.Fatalf("CopyFrom: %v, want feature_not_supported", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&count); err != nil || count != 3 {
		t.Fatalf("after CopyFrom: %d rows, %v; want 3", count, err)
	}

	// Connections are served one after another, and each starts from a clean session.
	pool.Close()
	conn1, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, conn1, `BEGIN`)
	mustExec(t, ctx, conn1, `INSERT INTO kv VALUES ('left-open', 1)`)
	mustExec(t, ctx, conn1, `CREATE TEMP TABLE scratch (a int)`)
	mustExec(t, ctx, conn1, `SELECT pg_advisory_lock(42)`)
	connected := make(chan *pgx.Conn, 1)
	go func() {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("second connection: %v", err)
		}
		connected <- c
	}()
	select {
	case <-connected:
		t.Fatal("a second connection was served while the first was open")
	case <-time.After(300 * time.Millisecond):
	}
	if err := conn1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	conn2 := <-connected
	if conn2 == nil {
		t.FailNow()
	}
	defer conn2.Close(ctx)
	var temps, locks int64
	if err := conn2.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM kv WHERE k = 'left-open'),
		       (SELECT count(*) FROM pg_class WHERE relname = 'scratch'),
		       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')`).Scan(&count, &temps, &locks); err != nil {
		t.Fatal(err)
	}
	if count != 0 || temps != 0 || locks != 0 {
		t.Fatalf("the next connection sees %d uncommitted rows, %d temp tables, %d advisory locks; want none", count, temps, locks)
	}
}

func TestTimescaleClientVanishes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewPGlite(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, conn, `CREATE TABLE marks (name text NOT NULL)`)
	// An extended-protocol pipeline whose Sync never comes: its implicit transaction must not
	// commit when the client goes away (as with PostgreSQL).
	fe := conn.PgConn().Frontend()
	fe.Send(&pgproto3.Parse{Query: `INSERT INTO marks VALUES ('unsynced')`})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.CommandComplete); ok {
			break
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("unsynced insert: %s", e.Message)
		}
	}
	_ = conn.PgConn().Conn().Close() // no Sync, no Terminate

	// A client that leaves in the middle of a message.
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.PgConn().Conn().Write([]byte{'Q', 0, 0, 1, 0, 'S', 'E'}); err != nil {
		t.Fatal(err)
	}
	_ = conn.PgConn().Conn().Close()

	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after two vanished clients: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM marks`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("marks: %d rows, %v; want 0 (the unsynced insert rolled back)", n, err)
	}
}

func mustQuery(t *testing.T, br pgx.BatchResults) pgx.Rows {
	t.Helper()
	rows, err := br.Query()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
