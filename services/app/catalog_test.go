package app_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
)

// catalogFixture is the application over a fresh database whose catalog read model is filled
// only when the test says so (project): the projector's lag, under the test's control.
type catalogFixture struct {
	t     *testing.T
	a     *app.Application
	pool  *pgxpool.Pool
	store *postgres.EventStore
}

func newCatalogFixture(t *testing.T) *catalogFixture {
	t.Helper()
	pool, store := pgtest.NewEventStore(t, postgres.WithInlineProjections(access.Projection{}))
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.CreateProject(context.Background(), person, app.CreateProject{Key: project, Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	return &catalogFixture{t: t, a: a, pool: pool, store: store}
}

// project applies a stream's events so far to the catalog read model, as the projector does.
func (f *catalogFixture) project(streamID string) {
	f.t.Helper()
	ctx := context.Background()
	events, err := f.store.Load(ctx, streamID)
	if err != nil {
		f.t.Fatal(err)
	}
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := (catalog.Projection{}).Apply(ctx, tx, nil, events); err != nil {
		f.t.Fatalf("project %s: %v", streamID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *catalogFixture) exec(sql string) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *catalogFixture) targeting(flag, env string, tg domain.Targeting) error {
	_, _, err := f.a.Commands.UpdateTargeting(context.Background(), person, app.UpdateTargeting{Project: project, Flag: flag,
		Environment: env, Targeting: tg})
	return err
}

// requireCurrent checks the catalog commands validate against equals the one built by folding
// every stream whole: the compact read path changes the cost, never the answer.
func (f *catalogFixture) requireCurrent(flags, segments []string) {
	f.t.Helper()
	ctx := context.Background()
	p, _, err := f.a.Queries.Project(ctx, project)
	if err != nil {
		f.t.Fatal(err)
	}
	var fs []*domain.Flag
	for _, k := range flags {
		fl, _, err := f.a.Queries.Flag(ctx, project, k)
		if err != nil {
			f.t.Fatal(err)
		}
		fs = append(fs, fl)
	}
	var ss []*domain.Segment
	for _, k := range segments {
		s, _, err := f.a.Queries.Segment(ctx, project, k)
		if err != nil {
			f.t.Fatal(err)
		}
		ss = append(ss, s)
	}
	want := domain.BuildCatalog(p, fs, ss)
	got, err := f.a.Queries.Catalog(ctx, project)
	if err != nil {
		f.t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		f.t.Fatalf("catalog:\n got  %+v\n want %+v", got, want)
	}
}

func requires(flag, variation string) domain.Targeting {
	return domain.Targeting{On: true, OffVariation: "false", Default: domain.Serve{Variation: "false"},
		Prerequisites: []domain.Prerequisite{{Flag: flag, Variation: variation}}}
}

func inSegments(segments ...any) domain.Targeting {
	return domain.Targeting{On: true, OffVariation: "false", Default: domain.Serve{Variation: "false"},
		Rules: []domain.Rule{
			{Clauses: []domain.Clause{{Operator: domain.OpInSegment, Values: segments}}, Serve: domain.Serve{Variation: "true"}},
			{Clauses: []domain.Clause{{Attribute: "plan", Operator: domain.OpIn, Values: []any{"pro"}},
				{Operator: domain.OpInSegment, Values: segments[:1]}}, Serve: domain.Serve{Variation: "true"}}}}
}

// Writes validate prerequisites and segments against the catalog read model's compact entries
// (its info column), not its folded states, and still see flags and segments created or changed
// a moment ago that the projector has not applied yet.
func TestWritesValidateReferencesFromTheCatalogInfo(t *testing.T) {
	t.Parallel()
	f := newCatalogFixture(t)
	ctx := context.Background()
	for _, k := range []string{"checkout", "banner"} {
		createFlag(t, f.a, k)
		f.project(domain.FlagStream(project, k))
	}
	for _, k := range []string{"beta", "staff"} {
		if _, _, err := f.a.Commands.CreateSegment(ctx, person, app.CreateSegment{Project: project, Key: k,
			Definition: domain.SegmentDefinition{Name: k, Included: []string{"u1"}}}); err != nil {
			t.Fatal(err)
		}
		f.project(domain.SegmentStream(project, k))
	}

	// Folded states of the referenced flag and segments that say nothing (no type, no variations):
	// a write that decoded them would refuse every reference below. (banner, the flag written, is
	// ahead of the read model after its first write: its state is what its new events fold onto.)
	f.exec(`UPDATE rm_flags SET state = '{}' WHERE key = 'checkout'`)
	f.exec(`UPDATE rm_segments SET state = '{}'`)
	if err := f.targeting("banner", "production", requires("checkout", "true")); err != nil {
		t.Fatalf("a prerequisite on a projected flag: %v", err)
	}
	if err := f.targeting("banner", "production", requires("checkout", "maybe")); domain.ErrorCode(err) != domain.EInvalid {
		t.Fatalf("a prerequisite on a variation the flag does not have: %v", err)
	}
	if err := f.targeting("banner", "development", inSegments("beta", "staff")); err != nil {
		t.Fatalf("rules on projected segments: %v", err)
	}
	if err := f.targeting("banner", "development", inSegments("nobody")); domain.ErrorCode(err) != domain.EInvalid {
		t.Fatalf("a rule on a segment that does not exist: %v", err)
	}
	f.requireCurrent([]string{"checkout", "banner"}, []string{"beta", "staff"})

	// A flag just created, which the read model does not hold yet, is a valid prerequisite; the
	// flags changed since the read model last saw them (banner, checkout) count with their new
	// prerequisites, so a cycle through them is refused.
	f.project(domain.FlagStream(project, "checkout"))
	f.project(domain.SegmentStream(project, "beta"))
	f.project(domain.SegmentStream(project, "staff"))
	createFlag(t, f.a, "fresh")
	if err := f.targeting("checkout", "production", requires("fresh", "true")); err != nil {
		t.Fatalf("a prerequisite on a flag just created: %v", err)
	}
	if err := f.targeting("fresh", "production", requires("banner", "true")); domain.ErrorCode(err) != domain.EInvalid {
		t.Fatalf("a prerequisite cycle through flags the read model has not caught up with: %v", err)
	}
	if _, _, err := f.a.Commands.ArchiveSegment(ctx, person, app.ArchiveSegment{Project: project, Segment: "staff"}); domain.ErrorCode(err) == "" {
		t.Fatal("archived a segment a flag the read model has not caught up with uses")
	}
	f.requireCurrent([]string{"checkout", "banner", "fresh"}, []string{"beta", "staff"})

	// Rows an older binary wrote (info not computed at their version) are read from their state.
	f.project(domain.FlagStream(project, "banner"))
	f.exec(`UPDATE rm_flags SET info = '{"type":"string"}' WHERE key = 'banner'`)
	f.exec(`UPDATE rm_flags SET info_version = info_version - 1 WHERE key = 'banner'`)
	f.requireCurrent([]string{"checkout", "banner", "fresh"}, []string{"beta", "staff"})
}

// The migration's backfill (vexil_flag_info / vexil_segment_info, migration 0180) computes the
// same entries as the projection (domain.FlagInfoOf / SegmentInfoOf), so a database upgraded in
// place and one rebuilt by replay hold equal rows.
func TestCatalogInfoBackfillAgreesWithTheProjection(t *testing.T) {
	t.Parallel()
	f := newCatalogFixture(t)
	ctx := context.Background()
	segments := []string{"beta", "staff", "vip", "empty"}
	for i, k := range segments {
		def := domain.SegmentDefinition{Name: k, Included: []string{"u1"}}
		if i > 0 && i < 3 {
			def.Clauses = []domain.Clause{
				{Operator: domain.OpInSegment, Values: []any{segments[i-1], "beta"}},
				{Attribute: "country", Operator: domain.OpIn, Values: []any{"FR"}},
				{Operator: domain.OpInSegment, Values: []any{"beta"}, Negate: true}}
		}
		if _, _, err := f.a.Commands.CreateSegment(ctx, person, app.CreateSegment{Project: project, Key: k, Definition: def}); err != nil {
			t.Fatalf("segment %s: %v", k, err)
		}
	}
	if _, _, err := f.a.Commands.ArchiveSegment(ctx, person, app.ArchiveSegment{Project: project, Segment: "empty"}); err != nil {
		t.Fatal(err)
	}
	flags := []string{"plain", "gate", "rules", "both", "string-flag", "old"}
	for _, k := range flags {
		if k == "string-flag" {
			if _, _, err := f.a.Commands.CreateFlag(ctx, person, app.CreateFlag{Project: project, Key: k, Name: k, Type: domain.FlagString,
				Variations: []domain.Variation{{Key: "red", Value: "red"}, {Key: "blue", Value: "blue"}}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		createFlag(t, f.a, k)
	}
	steps := []struct {
		flag, env string
		tg        domain.Targeting
	}{
		{"gate", "production", requires("plain", "true")},
		{"gate", "development", requires("plain", "false")},
		{"rules", "production", inSegments("vip", "beta", "vip")},
		{"rules", "development", inSegments("staff")},
		{"both", "development", requires("gate", "true")},
		{"both", "production", inSegments("beta")},
	}
	for _, s := range steps {
		if err := f.targeting(s.flag, s.env, s.tg); err != nil {
			t.Fatalf("%s in %s: %v", s.flag, s.env, err)
		}
	}
	if _, _, err := f.a.Commands.ArchiveFlag(ctx, person, app.ArchiveFlag{Project: project, Flag: "old"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range flags {
		f.project(domain.FlagStream(project, k))
	}
	for _, k := range segments {
		f.project(domain.SegmentStream(project, k))
	}
	var differ, total int
	if err := f.pool.QueryRow(ctx, `SELECT
		  (SELECT count(*) FROM rm_flags WHERE info IS DISTINCT FROM vexil_flag_info(state)) +
		  (SELECT count(*) FROM rm_segments WHERE info IS DISTINCT FROM vexil_segment_info(state)),
		  (SELECT count(*) FROM rm_flags) + (SELECT count(*) FROM rm_segments)`).Scan(&differ, &total); err != nil {
		t.Fatal(err)
	}
	if differ != 0 || total != len(flags)+len(segments) {
		rows, _ := f.pool.Query(ctx, `SELECT key, info::text, vexil_flag_info(state)::text FROM rm_flags WHERE info IS DISTINCT FROM vexil_flag_info(state)
			UNION ALL SELECT key, info::text, vexil_segment_info(state)::text FROM rm_segments WHERE info IS DISTINCT FROM vexil_segment_info(state)`)
		for rows.Next() {
			var k, projected, backfilled string
			_ = rows.Scan(&k, &projected, &backfilled)
			t.Errorf("%s: projection %s, backfill %s", k, projected, backfilled)
		}
		rows.Close()
		t.Fatalf("%d of %d rows differ (want %d rows)", differ, total, len(flags)+len(segments))
	}
	// What the migration runs on an existing database, and the catalog it then reads.
	f.exec(`UPDATE rm_flags SET info = vexil_flag_info(state), info_version = version`)
	f.exec(`UPDATE rm_segments SET info = vexil_segment_info(state), info_version = version`)
	f.requireCurrent(flags, segments)
}

// Catalog entries are decoded once per row version: an unchanged row is taken from the process's
// cache (here, even when its info is overwritten behind the projection's back), a row at a new
// version is read again.
func TestCatalogEntriesAreDecodedOncePerVersion(t *testing.T) {
	t.Parallel()
	f := newCatalogFixture(t)
	for _, k := range []string{"checkout", "banner"} {
		createFlag(t, f.a, k)
		f.project(domain.FlagStream(project, k))
	}
	f.requireCurrent([]string{"checkout", "banner"}, nil)

	f.exec(`UPDATE rm_flags SET info = '{"type":"string","variations":["x"]}' WHERE key = 'checkout'`)
	if err := f.targeting("banner", "production", requires("checkout", "true")); err != nil {
		t.Fatalf("a prerequisite on a flag whose entry was decoded before: %v", err)
	}
	f.project(domain.FlagStream(project, "banner"))
	f.requireCurrent([]string{"checkout", "banner"}, nil)

	// A new version of checkout (projected: its info is current again) replaces the entry.
	if _, _, err := f.a.Commands.ArchiveFlag(context.Background(), person, app.ArchiveFlag{Project: project, Flag: "checkout"}); domain.ErrorCode(err) == "" {
		t.Fatal("archived a flag another flag requires")
	}
	if err := f.targeting("checkout", "development", requires("banner", "true")); err != nil {
		t.Fatal(err)
	}
	f.project(domain.FlagStream(project, "checkout"))
	f.requireCurrent([]string{"checkout", "banner"}, nil)
	if err := f.targeting("banner", "development", requires("checkout", "true")); domain.ErrorCode(err) != domain.EInvalid {
		t.Fatalf("a prerequisite cycle through the new version of a cached entry: %v", err)
	}
}
