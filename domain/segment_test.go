package domain_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func betaTesters() domain.SegmentDefinition {
	return domain.SegmentDefinition{Name: "Beta testers", Tags: []string{"qa"},
		Clauses:  []domain.Clause{clause("email", domain.OpEndsWith, "@acme.com"), clause("", domain.OpInSegment, "vip")},
		Included: []string{"zoe", "adam", "zoe"}, Excluded: []string{"mallory"}}
}

func TestCreateSegment(t *testing.T) {
	def := func(mod func(d *domain.SegmentDefinition)) domain.NewSegment {
		d := betaTesters()
		d.Clauses = append([]domain.Clause{}, d.Clauses...)
		if mod != nil {
			mod(&d)
		}
		return domain.NewSegment{Project: project, Key: "testers", SegmentDefinition: d}
	}
	tests := []struct {
		name        string
		in          domain.NewSegment
		then        []domain.Event
		code, field string
	}{
		{name: "create; match defaults to all, user keys deduplicated and sorted", in: def(nil),
			then: []domain.Event{&domain.SegmentCreated{Project: project, Key: "testers", Name: "Beta testers", Tags: []string{"qa"},
				Match: "all", Clauses: betaTesters().Clauses, Included: []string{"adam", "zoe"}, Excluded: []string{"mallory"}}}},
		{name: "create with match any and nothing else", in: domain.NewSegment{Project: project, Key: "everyone",
			SegmentDefinition: domain.SegmentDefinition{Name: "Everyone", Match: "any"}},
			then: []domain.Event{&domain.SegmentCreated{Project: project, Key: "everyone", Name: "Everyone", Tags: []string{},
				Match: "any", Clauses: []domain.Clause{}, Included: []string{}, Excluded: []string{}}}},
		{name: "invalid project", in: domain.NewSegment{Key: "x", SegmentDefinition: betaTesters()}, code: domain.EInvalid, field: "project"},
		{name: "invalid key", in: domain.NewSegment{Project: project, Key: "x y", SegmentDefinition: betaTesters()},
			code: domain.EInvalid, field: "key"},
		{name: "key taken", in: domain.NewSegment{Project: project, Key: "beta", SegmentDefinition: betaTesters()},
			code: domain.EConflict, field: "key"},
		{name: "key taken by an archived segment", in: domain.NewSegment{Project: project, Key: "old", SegmentDefinition: betaTesters()},
			code: domain.EConflict, field: "key"},
		{name: "missing name", in: def(func(d *domain.SegmentDefinition) { d.Name = "" }), code: domain.EInvalid, field: "name"},
		{name: "description too long", in: def(func(d *domain.SegmentDefinition) { d.Description = strings.Repeat("d", 2001) }),
			code: domain.EInvalid, field: "description"},
		{name: "invalid tag", in: def(func(d *domain.SegmentDefinition) { d.Tags = []string{""} }), code: domain.EInvalid, field: "tags[0]"},
		{name: "unknown match", in: def(func(d *domain.SegmentDefinition) { d.Match = "some" }), code: domain.EInvalid, field: "match"},
		{name: "too many clauses", in: def(func(d *domain.SegmentDefinition) {
			for len(d.Clauses) <= domain.MaxSegmentClauses {
				d.Clauses = append(d.Clauses, clause("a", domain.OpExists))
			}
		}), code: domain.EInvalid, field: "clauses"},
		{name: "invalid clause", in: def(func(d *domain.SegmentDefinition) { d.Clauses[0] = clause("email", domain.OpEndsWith, 1.0) }),
			code: domain.EInvalid, field: "clauses[0].values[0]"},
		{name: "unknown segment", in: def(func(d *domain.SegmentDefinition) { d.Clauses[1] = clause("", domain.OpInSegment, "vip", "ghost") }),
			code: domain.EInvalid, field: "clauses[1].values[1]"},
		{name: "contains itself", in: def(func(d *domain.SegmentDefinition) { d.Clauses[1] = clause("", domain.OpInSegment, "vip", "testers") }),
			code: domain.EInvalid, field: "clauses[1].values[1]"},
		{name: "empty included key", in: def(func(d *domain.SegmentDefinition) { d.Included = []string{"a", ""} }),
			code: domain.EInvalid, field: "included[1]"},
		{name: "included key too long", in: def(func(d *domain.SegmentDefinition) { d.Included = []string{strings.Repeat("k", 1001)} }),
			code: domain.EInvalid, field: "included[0]"},
		{name: "too many excluded keys", in: def(func(d *domain.SegmentDefinition) { d.Excluded = strs("u", domain.MaxSegmentKeys+1) }),
			code: domain.EInvalid, field: "excluded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.CreateSegment(tc.in, catalog())
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

func TestSegmentCommands(t *testing.T) {
	created := func(key string) *domain.SegmentCreated {
		return &domain.SegmentCreated{Project: project, Key: key, Name: "Segment " + key, Tags: []string{}, Match: "all",
			Clauses: []domain.Clause{clause("country", domain.OpEquals, "de")}, Included: []string{}, Excluded: []string{}}
	}
	type when func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error)
	update := func(d domain.SegmentDefinition) when {
		return func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) { return s.Update(d, cat) }
	}
	archive := func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) { return s.Archive(cat) }
	restore := func(s *domain.Segment, _ *domain.Catalog) ([]domain.Event, error) { return s.Restore() }
	tests := []struct {
		name        string
		given       []domain.Event
		cat         func(*domain.Catalog) // changes to the default catalog
		when        when
		then        []domain.Event
		code, field string
		details     map[string]any
	}{
		{name: "update", given: []domain.Event{created("beta")},
			when: update(domain.SegmentDefinition{Name: "Beta", Match: "any", Clauses: []domain.Clause{clause("plan", domain.OpIn, "pro")},
				Included: []string{"b", "a"}}),
			then: []domain.Event{&domain.SegmentUpdated{Name: "Beta", Tags: []string{}, Match: "any",
				Clauses: []domain.Clause{clause("plan", domain.OpIn, "pro")}, Included: []string{"a", "b"}, Excluded: []string{}}}},
		{name: "update to the same definition is a no-op", given: []domain.Event{created("beta")},
			when: update(domain.SegmentDefinition{Name: "Segment beta", Clauses: []domain.Clause{clause("country", domain.OpEquals, "de")}})},
		{name: "update creating a cycle", given: []domain.Event{created("beta")},
			when: update(domain.SegmentDefinition{Name: "Beta", Clauses: []domain.Clause{clause("", domain.OpInSegment, "vip")}}),
			code: domain.EInvalid, field: "clauses[0].values[0]"},
		{name: "update naming itself", given: []domain.Event{created("beta")},
			when: update(domain.SegmentDefinition{Name: "Beta", Clauses: []domain.Clause{clause("", domain.OpInSegment, "beta")}}),
			code: domain.EInvalid, field: "clauses[0].values[0]"},
		{name: "update with an invalid clause", given: []domain.Event{created("beta")},
			when: update(domain.SegmentDefinition{Name: "Beta", Clauses: []domain.Clause{clause("a", domain.OpExists), clause("a", "near")}}),
			code: domain.EInvalid, field: "clauses[1].op"},
		{name: "update an archived segment", given: []domain.Event{created("beta"), &domain.SegmentArchived{}},
			when: update(betaTesters()), code: domain.EConflict},
		{name: "update a missing segment", when: update(betaTesters()), code: domain.ENotFound},

		{name: "archive an unused segment", given: []domain.Event{created("beta")}, when: archive,
			cat:  func(c *domain.Catalog) { delete(c.Segments, "vip") },
			then: []domain.Event{&domain.SegmentArchived{}}},
		{name: "archive a segment a live segment contains", given: []domain.Event{created("beta")}, when: archive,
			code: domain.EConflict, details: map[string]any{"flags": []string{}, "segments": []string{"vip"}}},
		{name: "archive a segment a live flag uses", given: []domain.Event{created("internal")}, when: archive,
			code: domain.EConflict, details: map[string]any{"flags": []string{"banner"}, "segments": []string{}}},
		{name: "archive twice", given: []domain.Event{created("old"), &domain.SegmentArchived{}}, when: archive, code: domain.EConflict},
		{name: "restore", given: []domain.Event{created("old"), &domain.SegmentArchived{}}, when: restore,
			then: []domain.Event{&domain.SegmentRestored{}}},
		{name: "restore a live segment", given: []domain.Event{created("beta")}, when: restore, code: domain.EConflict},
		{name: "restore a missing segment", when: restore, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := catalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			s := foldSegment(t, tc.given...)
			got, err := tc.when(s, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
			if tc.details != nil {
				var de *domain.Error
				errors.As(err, &de)
				if !reflect.DeepEqual(de.Details, tc.details) {
					t.Fatalf("details %v, want %v", de.Details, tc.details)
				}
			}
			if s != nil && s.Version != int64(len(tc.given)) {
				t.Fatalf("the command mutated the segment")
			}
		})
	}
}

func TestFoldSegment(t *testing.T) {
	s, err := fold[domain.Segment](record(t, "segment/acme/beta",
		&domain.SegmentCreated{Project: project, Key: "beta", Name: "Beta", Clauses: []domain.Clause{clause("a", domain.OpExists)}},
		&domain.SegmentUpdated{Name: "Beta 2", Tags: []string{"t"}, Match: "any", Included: []string{"u1"}},
		&domain.SegmentArchived{},
		&domain.SegmentRestored{},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Segment{Project: project, Key: "beta", Name: "Beta 2", Tags: []string{"t"}, Match: "any",
		Clauses: []domain.Clause{}, Included: []string{"u1"}, Excluded: []string{}, Version: 4,
		CreatedAt: t0, UpdatedAt: t0.Add(3 * 60e9)}
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("got  %+v\nwant %+v", *s, want)
	}
	// An event stored without match (older writer) reads as match all.
	s, _ = fold[domain.Segment](record(t, "segment/acme/x", &domain.SegmentCreated{Project: project, Key: "x", Name: "X"}))
	if s.Match != domain.MatchAll {
		t.Fatalf("match %q", s.Match)
	}
	if s, err := fold[domain.Segment](nil); s != nil || err != nil {
		t.Fatalf("empty stream: %v %v", s, err)
	}
	if _, err := fold[domain.Segment](record(t, "segment/acme/x", &domain.SegmentUpdated{Name: "X"})); err == nil {
		t.Fatalf("a stream without SegmentCreated folded")
	}
}
