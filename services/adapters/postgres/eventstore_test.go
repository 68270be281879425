package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// mustOpen returns a pool on a fresh, migrated database.
func mustOpen(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := pgtest.NewDatabase(tb)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Up(); err != nil {
		tb.Fatal(err)
	}
	_ = m.Close()
	pool, err := postgres.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func mustStore(tb testing.TB, pool *pgxpool.Pool, opts ...postgres.Option) *postgres.EventStore {
	tb.Helper()
	s, err := postgres.NewEventStore(pool, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func toggled(on bool) domain.Event { return &domain.FlagToggled{Environment: "production", On: on} }

func versions(events []domain.RecordedEvent) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Version
	}
	return out
}

func equalVersions(got []int64, from, to int64) bool {
	if int64(len(got)) != to-from+1 {
		return false
	}
	for i, v := range got {
		if v != from+int64(i) {
			return false
		}
	}
	return true
}

func domainErr(t *testing.T, err error, code string) *domain.Error {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != code {
		t.Fatalf("error = %v, want a domain error with code %s", err, code)
	}
	return de
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestAppendAndLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	s := mustStore(t, pool)
	stream := domain.FlagStream("web", "checkout")
	meta := domain.Metadata{Actor: "user:alice", Reason: "launch", RequestID: "req-1"}

	rec, err := s.Append(ctx, stream, 0, meta, toggled(true), toggled(false))
	if err != nil {
		t.Fatal(err)
	}
	if !equalVersions(versions(rec), 1, 2) || rec[0].Position >= rec[1].Position {
		t.Fatalf("recorded %+v", rec)
	}
	if rec[0].Type != "FlagToggled" || rec[0].Metadata != meta || rec[0].StreamID != stream {
		t.Fatalf("recorded %+v", rec[0])
	}
	if !rec[0].OccurredAt.Equal(rec[1].OccurredAt) {
		t.Fatalf("one timestamp per append: %v, %v", rec[0].OccurredAt, rec[1].OccurredAt)
	}
	rec3, err := s.Append(ctx, stream, 2, meta, toggled(true))
	if err != nil {
		t.Fatal(err)
	}
	if rec3[0].Version != 3 || rec3[0].Position <= rec[1].Position {
		t.Fatalf("third append recorded %+v", rec3)
	}

	loaded, err := s.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if !equalVersions(versions(loaded), 1, 3) {
		t.Fatalf("loaded versions %v", versions(loaded))
	}
	for i, r := range append(rec, rec3...) {
		l := loaded[i]
		if l.Position != r.Position || l.Type != r.Type || !l.OccurredAt.Equal(r.OccurredAt) || l.Metadata != r.Metadata ||
			string(l.Data) != string(r.Data) {
			t.Fatalf("loaded %+v, appended %+v", l, r)
		}
	}
	e, err := loaded[1].Decode()
	if err != nil {
		t.Fatal(err)
	}
	if ft, ok := e.(*domain.FlagToggled); !ok || ft.On || ft.Environment != "production" {
		t.Fatalf("decoded %#v", e)
	}

	after, err := s.LoadAfter(ctx, pool, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !equalVersions(versions(after), 2, 3) {
		t.Fatalf("LoadAfter(1) versions %v", versions(after))
	}
	if v, err := s.StreamVersion(ctx, stream); err != nil || v != 3 {
		t.Fatalf("StreamVersion = %d, %v", v, err)
	}
	if v, err := s.StreamVersion(ctx, "flag/web/none"); err != nil || v != 0 {
		t.Fatalf("StreamVersion of a missing stream = %d, %v", v, err)
	}
	if l, err := s.Load(ctx, "flag/web/none"); err != nil || len(l) != 0 {
		t.Fatalf("Load of a missing stream = %v, %v", l, err)
	}
}

func TestAppendValidatesInput(t *testing.T) {
	t.Parallel()
	s := mustStore(t, mustOpen(t))
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"empty stream": func() error { _, err := s.Append(ctx, "", 0, domain.Metadata{}, toggled(true)); return err },
		"no events":    func() error { _, err := s.Append(ctx, "flag/p/f", 0, domain.Metadata{}); return err },
		"negative":     func() error { _, err := s.Append(ctx, "flag/p/f", -1, domain.Metadata{}, toggled(true)); return err },
		"nil event":    func() error { _, err := s.Append(ctx, "flag/p/f", 0, domain.Metadata{}, nil); return err },
		"unregistered": func() error { _, err := s.Append(ctx, "flag/p/f", 0, domain.Metadata{}, unregistered{}); return err },
	} {
		if err := call(); domain.ErrorCode(err) != domain.EInvalid {
			t.Errorf("%s: error %v, want invalid", name, err)
		}
	}
}

type unregistered struct{}

func (unregistered) EventType() string { return "NotAnEvent" }

func TestAppendConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	s := mustStore(t, pool)
	stream := domain.FlagStream("web", "banner")
	if _, err := s.Append(ctx, stream, 0, domain.Metadata{}, toggled(true), toggled(false)); err != nil {
		t.Fatal(err)
	}
	for _, expected := range []int64{0, 1, 3, 7} {
		_, err := s.Append(ctx, stream, expected, domain.Metadata{}, toggled(true))
		de := domainErr(t, err, domain.EConflict)
		if de.Details["current_version"] != int64(2) {
			t.Fatalf("expected %d: details %v, want current_version 2", expected, de.Details)
		}
	}
	if v, _ := s.StreamVersion(ctx, stream); v != 2 {
		t.Fatalf("version after conflicts = %d", v)
	}
	if n := count(t, pool, `SELECT count(*) FROM watermill_outbox`); n != 1 {
		t.Fatalf("outbox rows = %d, want 1", n)
	}
}

func TestDuplicateCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	s := mustStore(t, pool)
	stream := domain.FlagStream("web", "search")
	meta := domain.Metadata{Actor: "system:scheduler", CommandID: "rollout-42-step-3"}
	if _, err := s.Append(ctx, stream, 0, meta, toggled(true)); err != nil {
		t.Fatal(err)
	}
	// The retry of the same command, with the version it saw before, and with the current one.
	for _, expected := range []int64{0, 1} {
		_, err := s.Append(ctx, stream, expected, meta, toggled(true))
		de := domainErr(t, err, domain.EConflict)
		if de.Details["duplicate_command"] != true || de.Details["version"] != int64(1) {
			t.Fatalf("details %v", de.Details)
		}
	}
	if v, _ := s.StreamVersion(ctx, stream); v != 1 {
		t.Fatalf("duplicate appended: version %d", v)
	}
	// The same command id on another stream, and another command on this one, are fine.
	if _, err := s.Append(ctx, domain.FlagStream("web", "other"), 0, meta, toggled(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, 1, domain.Metadata{CommandID: "rollout-42-step-4"}, toggled(false)); err != nil {
		t.Fatal(err)
	}

	// Concurrent repeats of one command: exactly one appends.
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx, stream, 2, domain.Metadata{CommandID: "once"}, toggled(true))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if domain.ErrorCode(err) != domain.EConflict {
			t.Fatalf("concurrent repeat: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent repeats succeeded, want 1", ok)
	}
	if v, _ := s.StreamVersion(ctx, stream); v != 3 {
		t.Fatalf("version = %d, want 3", v)
	}
}

func TestLoadUntil(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	s := mustStore(t, mustOpen(t), postgres.WithClock(clock))
	stream := domain.FlagStream("web", "history")
	if _, err := s.Append(ctx, stream, 0, domain.Metadata{}, toggled(true), toggled(false)); err != nil {
		t.Fatal(err)
	}
	set(t0.Add(time.Hour))
	if _, err := s.Append(ctx, stream, 2, domain.Metadata{}, toggled(true)); err != nil {
		t.Fatal(err)
	}
	set(t0.Add(2 * time.Hour))
	if _, err := s.Append(ctx, stream, 3, domain.Metadata{}, toggled(false)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{t0.Add(-time.Second), 0},
		{t0, 2},
		{t0.Add(30 * time.Minute), 2},
		{t0.Add(time.Hour), 3},
		{t0.Add(3 * time.Hour), 4},
	} {
		got, err := s.LoadUntil(ctx, stream, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if !equalVersions(versions(got), 1, c.want) {
			t.Errorf("LoadUntil(%v) versions %v, want 1..%d", c.at, versions(got), c.want)
		}
	}
	all, _ := s.Load(ctx, stream)
	if !all[3].OccurredAt.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("occurred_at = %v", all[3].OccurredAt)
	}
}

func TestReadAllAndListStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustStore(t, mustOpen(t))
	appends := []struct {
		stream   string
		expected int64
	}{
		{domain.FlagStream("web", "a"), 0},
		{domain.FlagStream("api", "b"), 0},
		{domain.FlagStream("web", "a"), 1},
		{domain.ProjectStream("web"), 0},
		{domain.FlagStream("web", "c"), 0},
	}
	var want []string
	for _, a := range appends {
		rec, err := s.Append(ctx, a.stream, a.expected, domain.Metadata{}, toggled(true))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s@%d", rec[0].StreamID, rec[0].Version))
	}
	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, e := range all {
		got = append(got, fmt.Sprintf("%s@%d", e.StreamID, e.Version))
		if i > 0 && e.Position <= all[i-1].Position {
			t.Fatalf("positions not increasing: %v", all)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ReadAll = %v, want %v", got, want)
	}
	page, err := s.ReadAll(ctx, all[1].Position, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Position != all[2].Position || page[1].Position != all[3].Position {
		t.Fatalf("ReadAll after %d limit 2 = %v", all[1].Position, page)
	}

	streams, err := s.ListStreams(ctx, "flag/web/")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(streams) != "[flag/web/a flag/web/c]" {
		t.Fatalf("ListStreams(flag/web/) = %v", streams)
	}
	if streams, _ := s.ListStreams(ctx, ""); len(streams) != 4 {
		t.Fatalf("ListStreams() = %v", streams)
	}
	if streams, _ := s.ListStreams(ctx, "flag/w%"); len(streams) != 0 {
		t.Fatalf("prefix is not a pattern: %v", streams)
	}
}

func TestOutboxMessagePerAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	s := mustStore(t, pool)
	stream := domain.FlagStream("web", "outbox")
	rec, err := s.Append(ctx, stream, 0, domain.Metadata{Actor: "user:bob"}, toggled(true), toggled(false))
	if err != nil {
		t.Fatal(err)
	}
	var payload, meta []byte
	if err := pool.QueryRow(ctx, `SELECT payload::text, metadata::text FROM watermill_outbox`).Scan(&payload, &meta); err != nil {
		t.Fatal(err)
	}
	var msg postgres.AppendedEvents
	if err := json.Unmarshal(payload, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.StreamID != stream || msg.LastVersion() != 2 || len(msg.Events) != 2 ||
		msg.Events[0].Position != rec[0].Position || msg.Events[1].Metadata.Actor != "user:bob" {
		t.Fatalf("outbox payload %s", payload)
	}
	var md map[string]string
	if err := json.Unmarshal(meta, &md); err != nil {
		t.Fatal(err)
	}
	if md[postgres.MetaStreamID] != stream || md[postgres.MetaVersion] != "2" {
		t.Fatalf("outbox metadata %s", meta)
	}
}

// inlineCounter records events into inline_seen, and fails when fail is set.
type inlineCounter struct {
	name string
	fail bool
}

func (p inlineCounter) Name() string { return p.name }

func (p inlineCounter) ApplyInline(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	for _, e := range events {
		if _, err := tx.Exec(ctx, `INSERT INTO inline_seen (stream_id, version) VALUES ($1, $2)`, e.StreamID, e.Version); err != nil {
			return err
		}
	}
	if p.fail {
		return domain.Errorf(domain.EInvalid, "inline projection refuses")
	}
	return nil
}

func TestInlineProjectionsAndNoPartialWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE inline_seen (stream_id text, version bigint)`); err != nil {
		t.Fatal(err)
	}
	good := mustStore(t, pool, postgres.WithInlineProjections(inlineCounter{name: "inline"}))
	bad := mustStore(t, pool, postgres.WithInlineProjections(inlineCounter{name: "inline"}, inlineCounter{name: "other", fail: true}))
	stream := domain.TokenStream("t1")

	if _, err := good.Append(ctx, stream, 0, domain.Metadata{CommandID: "c1"}, toggled(true)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM inline_seen`); n != 1 {
		t.Fatalf("inline rows = %d", n)
	}
	if err := waitFor(ctx, pool, stream, 1, "inline"); err != nil {
		t.Fatal("inline checkpoint not advanced:", err)
	}

	// A failing inline projection rolls back events, command, outbox, checkpoints and the other
	// projection's writes; the error keeps its domain code.
	_, err := bad.Append(ctx, stream, 1, domain.Metadata{CommandID: "c2"}, toggled(false), toggled(true))
	_ = domainErr(t, err, domain.EInvalid)
	checks := map[string]int64{
		`SELECT count(*) FROM events`:                                                 1,
		`SELECT count(*) FROM stream_commands`:                                        1,
		`SELECT count(*) FROM watermill_outbox`:                                       1,
		`SELECT count(*) FROM inline_seen`:                                            1,
		`SELECT max(version) FROM projection_checkpoints WHERE projection = 'inline'`: 1,
	}
	for q, want := range checks {
		if n := count(t, pool, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	// The command id of the failed append is free again.
	if _, err := good.Append(ctx, stream, 1, domain.Metadata{CommandID: "c2"}, toggled(false)); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, pool, stream, 2, "inline"); err != nil {
		t.Fatal(err)
	}
}

// waitFor checks a checkpoint without importing the projector package (no import cycle).
func waitFor(ctx context.Context, pool *pgxpool.Pool, stream string, version int64, projection string) error {
	var v int64
	err := pool.QueryRow(ctx, `SELECT version FROM projection_checkpoints WHERE projection = $1 AND stream_id = $2`,
		projection, stream).Scan(&v)
	if err != nil {
		return err
	}
	if v != version {
		return fmt.Errorf("checkpoint %d, want %d", v, version)
	}
	return nil
}

func TestConcurrentAppendsOnOneStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := mustOpen(t)
	s := mustStore(t, pool)
	stream := domain.FlagStream("web", "contended")
	const workers, rounds = 50, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	successes, conflicts := 0, 0
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range rounds {
				attempt(ctx, t, s, stream, &mu, &successes, &conflicts)
			}
		}()
	}
	close(start)
	wg.Wait()
	if successes+conflicts != workers*rounds || successes == 0 {
		t.Fatalf("successes %d, conflicts %d", successes, conflicts)
	}
	all, err := s.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if !equalVersions(versions(all), 1, int64(successes)) {
		t.Fatalf("versions %v, want 1..%d", versions(all), successes)
	}
	if n := count(t, pool, `SELECT count(*) FROM watermill_outbox`); n != int64(successes) {
		t.Fatalf("outbox rows %d, want %d", n, successes)
	}
	t.Logf("%d appends succeeded, %d conflicted", successes, conflicts)
}

// attempt loads the stream and appends at the loaded version, counting the outcome.
func attempt(ctx context.Context, t *testing.T, s *postgres.EventStore, stream string, mu *sync.Mutex, successes, conflicts *int) {
	loaded, err := s.Load(ctx, stream)
	if err != nil {
		t.Error(err)
		return
	}
	expected := int64(len(loaded))
	_, err = s.Append(ctx, stream, expected, domain.Metadata{}, toggled(true))
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err == nil:
		*successes++
	case domain.ErrorCode(err) == domain.EConflict:
		*conflicts++
		var de *domain.Error
		errors.As(err, &de)
		if cv, ok := de.Details["current_version"].(int64); !ok || cv <= expected {
			t.Errorf("conflict details %v for expected %d", de.Details, expected)
		}
	default:
		t.Errorf("append: %v", err)
	}
}

func TestTranslateError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pool := mustOpen(t)
	_, err := pool.Exec(ctx, `SELECT 1`)
	terr := postgres.TranslateError(err)
	if domain.ErrorCode(terr) != domain.EUnavailable || !errors.Is(terr, context.Canceled) {
		t.Fatalf("canceled: %v (code %s)", terr, domain.ErrorCode(terr))
	}
	if _, err := pool.Exec(context.Background(), `CREATE TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (1)`); err == nil {
		t.Fatal("want a unique violation")
	} else if terr := postgres.TranslateError(err); domain.ErrorCode(terr) != domain.EConflict || !postgres.IsUniqueViolation(terr, "u_pkey") {
		t.Fatalf("unique: %v", terr)
	}
	if terr := postgres.TranslateError(pgx.ErrNoRows); domain.ErrorCode(terr) != domain.ENotFound {
		t.Fatalf("no rows: %v", terr)
	}
	if err := postgres.TranslateError(nil); err != nil {
		t.Fatal(err)
	}
	if postgres.IsTransient(errors.New("x")) {
		t.Fatal("a plain error is not transient")
	}
}

// One database URL configures both the pool and the migrator: pgxpool's pool_* parameters must
// not reach the server through the migrator's connection.
func TestMigratorAcceptsPoolParameters(t *testing.T) {
	url := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "pool_max_conns=3&pool_min_conns=1"
	ctx := context.Background()
	if err := postgres.EnsureDatabase(ctx, url); err != nil { // exists
		t.Fatal(err)
	}
	// Creating a missing database connects to "postgres" with the same parameters.
	missing := strings.Replace(url, "/"+dbName(t, url)+"?", "/"+dbName(t, url)+"_created?", 1)
	if err := postgres.EnsureDatabase(ctx, missing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool, err := postgres.Open(context.Background(), url)
		if err == nil {
			_, _ = pool.Exec(context.Background(), `DROP DATABASE IF EXISTS `+dbName(t, url)+`_created`)
			pool.Close()
		}
	})
	if err := postgres.EnsureDatabase(ctx, missing); err != nil { // now it exists
		t.Fatal(err)
	}
	m, err := postgres.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 3 {
		t.Fatalf("pool MaxConns = %d, want 3", got)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows %d (%v), want 1", n, err)
	}
}

// dbName is the database a URL names.
func dbName(t *testing.T, url string) string {
	t.Helper()
	rest := url[strings.LastIndex(url, "/")+1:]
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		t.Fatalf("no database in %s", url)
	}
	return rest
}
