package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/roles/replay"
)

// seedEvents writes a project with two environments and flags*perFlag events straight into the
// event store (one statement per stream; the chain trigger hashes them as usual).
func seedEvents(tb testing.TB, url string, flags, perFlag int) {
	tb.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer pool.Close()
	keygen := func(kind string) string { return kind + "-" + fmt.Sprintf("%032d", time.Now().UnixNano()) }
	pevents, err := domain.CreateProject("bench", "Bench", "", []domain.NewEnvironment{{Key: "dev", Name: "Dev"}, {Key: "prod", Name: "Prod"}}, keygen)
	if err != nil {
		tb.Fatal(err)
	}
	insert := func(stream string, events []domain.Event) {
		versions := make([]int64, len(events))
		types := make([]string, len(events))
		datas := make([]string, len(events))
		for i, e := range events {
			b, err := json.Marshal(e)
			if err != nil {
				tb.Fatal(err)
			}
			versions[i], types[i], datas[i] = int64(i+1), e.EventType(), string(b)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO events (stream_id, version, event_type, data, metadata)
			SELECT $1, u.v, u.t, u.d::jsonb, '{"actor":"bench"}' FROM unnest($2::bigint[], $3::text[], $4::text[]) u(v, t, d) ORDER BY u.v`,
			stream, versions, types, datas); err != nil {
			tb.Fatal(err)
		}
	}
	insert(domain.ProjectStream("bench"), pevents)
	cat := domain.NewCatalog()
	cat.Environments = []string{"dev", "prod"}
	for f := 0; f < flags; f++ {
		key := fmt.Sprintf("flag-%03d", f)
		created, err := domain.CreateFlag(domain.NewFlag{Project: "bench", Key: key, Name: key, Type: domain.FlagBoolean, Salt: "s"}, cat)
		if err != nil {
			tb.Fatal(err)
		}
		events := created
		for i := 1; i < perFlag; i++ {
			events = append(events, &domain.FlagToggled{Environment: []string{"dev", "prod"}[i%2], On: i%4 < 2})
		}
		insert(domain.FlagStream("bench", key), events)
	}
}

// BenchmarkReplay100k replays 100,003 events (a project, and 100 flags of 1,000 events each) into every read
// model. Goal: under 30 s.
func BenchmarkReplay100k(b *testing.B) {
	url := pgtest.NewMigratedDatabase(b)
	seedEvents(b, url, 100, 1000)
	r := &replay.Replayer{DatabaseURL: url, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Projections: []projections.Projection{access.Projection{}, catalog.Projection{}, rulesets.Projection{}, audit.Projection{}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.Rebuild(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if res.Events != 100_003 {
			b.Fatalf("replayed %d events", res.Events)
		}
		b.ReportMetric(float64(res.Events)/res.Duration.Seconds(), "events/s")
	}
}

func TestRebuildMatchesProjectionOrder(t *testing.T) {
	url := pgtest.NewMigratedDatabase(t)
	seedEvents(t, url, 3, 10)
	r := &replay.Replayer{DatabaseURL: url, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Projections: []projections.Projection{access.Projection{}, catalog.Projection{}, rulesets.Projection{}, audit.Projection{}}}
	res, err := r.Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 33 || res.Streams != 4 {
		t.Fatalf("replayed %+v", res)
	}
	// Nothing was live yet: verify reports the live tables as lagging, never as equal.
	if _, err := r.Verify(context.Background(), 10); err == nil {
		t.Fatal("verify against empty live read models passed")
	}
	// Swap: the rebuilt tables become the live ones.
	if err := r.Swap(context.Background()); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var flags, configs, auditRows int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM rm_flags), (SELECT count(*) FROM rm_ruleset_flags),
		(SELECT count(*) FROM rm_audit_log)`).Scan(&flags, &configs, &auditRows); err != nil {
		t.Fatal(err)
	}
	if flags != 3 || configs != 6 || auditRows != 33 {
		t.Fatalf("after swap: %d flags, %d configs, %d audit rows", flags, configs, auditRows)
	}
}
