package domain_test

import (
	"reflect"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestBuildCatalog(t *testing.T) {
	p, err := fold[domain.Project](record(t, "project/acme", acmeHistory()...))
	if err != nil {
		t.Fatal(err)
	}
	color := foldFlag(t, colorCreated(), &domain.FlagTargetingUpdated{Environment: "production",
		Targeting: normalized(fullTargeting(), "r1", "r2")})
	retired := foldFlag(t, boolCreated("retired"), &domain.FlagArchived{})
	vip := foldSegment(t, &domain.SegmentCreated{Project: project, Key: "vip", Name: "VIP",
		Clauses: []domain.Clause{clause("", domain.OpInSegment, "beta")}})
	beta := foldSegment(t, &domain.SegmentCreated{Project: project, Key: "beta", Name: "Beta"})

	c := domain.BuildCatalog(p, []*domain.Flag{color, retired}, []*domain.Segment{vip, beta})
	if !reflect.DeepEqual(c.Environments, []string{"production", "staging"}) || !c.HasEnvironment("staging") || c.HasEnvironment("qa") {
		t.Errorf("environments %v", c.Environments)
	}
	want := domain.FlagInfo{Type: domain.FlagString, Variations: []string{"red", "green", "blue"},
		Prerequisites: map[string][]domain.Prerequisite{"production": {{Flag: "other", Variation: "true"}}},
		Segments:      []string{"beta"}}
	if got, ok := c.Flag("color"); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("flag color: %+v", got)
	}
	if fi, _ := c.Flag("retired"); !fi.Archived || !fi.HasVariation("true") || fi.HasVariation("maybe") {
		t.Errorf("flag retired: %+v", fi)
	}
	if si, ok := c.Segment("vip"); !ok || !reflect.DeepEqual(si.Segments, []string{"beta"}) {
		t.Errorf("segment vip: %+v", si)
	}
	if got := c.FlagsUsingSegment("beta"); !reflect.DeepEqual(got, []string{"color"}) {
		t.Errorf("flags using beta: %v", got)
	}
	if got := c.SegmentsUsingSegment("beta"); !reflect.DeepEqual(got, []string{"vip"}) {
		t.Errorf("segments using beta: %v", got)
	}
	if got := c.FlagsRequiring("other"); !reflect.DeepEqual(got, []string{"color"}) {
		t.Errorf("flags requiring other: %v", got)
	}
}

func TestCatalogQueries(t *testing.T) {
	c := catalog()
	if got := c.FlagsRequiring("color"); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("flags requiring color: %v", got)
	}
	a := c.Flags["a"]
	a.Archived = true
	c.Flags["a"] = a
	if got := c.FlagsRequiring("color"); got != nil {
		t.Errorf("archived flags count as dependents: %v", got)
	}
	if got := c.FlagsUsingSegment("internal"); !reflect.DeepEqual(got, []string{"banner"}) {
		t.Errorf("flags using internal: %v", got)
	}

	// A nil catalog is an empty one.
	var none *domain.Catalog
	if none.HasEnvironment("production") || none.FlagsRequiring("a") != nil || none.FlagsUsingSegment("a") != nil ||
		none.SegmentsUsingSegment("a") != nil {
		t.Errorf("nil catalog is not empty")
	}
	if _, ok := none.Flag("a"); ok {
		t.Errorf("nil catalog has a flag")
	}
	if _, ok := none.Segment("a"); ok {
		t.Errorf("nil catalog has a segment")
	}
	// Adding to a zero Catalog works.
	var zero domain.Catalog
	zero.AddFlag(foldFlag(t, boolCreated("x")))
	zero.AddSegment(foldSegment(t, &domain.SegmentCreated{Project: project, Key: "s", Name: "S"}))
	if _, ok := zero.Flag("x"); !ok {
		t.Errorf("AddFlag on a zero catalog")
	}
	if _, ok := zero.Segment("s"); !ok {
		t.Errorf("AddSegment on a zero catalog")
	}
}
