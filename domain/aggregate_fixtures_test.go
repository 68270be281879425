package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// t0 is when every test history starts; event i happens i minutes later.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// record turns events into a stored stream, as the event store would return it: JSON-encoded,
// versions 1..n, one minute apart.
func record(tb testing.TB, stream string, events ...domain.Event) []domain.RecordedEvent {
	tb.Helper()
	out := make([]domain.RecordedEvent, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			tb.Fatalf("encode %s: %v", e.EventType(), err)
		}
		out[i] = domain.RecordedEvent{StreamID: stream, Version: int64(i + 1), Position: int64(100 + i),
			Type: e.EventType(), Data: data, Metadata: domain.Metadata{Actor: "user:test"},
			OccurredAt: t0.Add(time.Duration(i) * time.Minute)}
	}
	return out
}

// keygen returns a deterministic SDK key generator: client-000001, server-000002, ...
func keygen() func(kind string) string {
	n := 0
	return func(kind string) string {
		n++
		return fmt.Sprintf("%s-%016d", kind, n)
	}
}

// eventsJSON renders events as "Type {json}" lines, the form the event store keeps, so that
// comparisons ignore nothing that is stored and failures read well.
func eventsJSON(tb testing.TB, events []domain.Event) string {
	tb.Helper()
	var b strings.Builder
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			tb.Fatalf("encode %s: %v", e.EventType(), err)
		}
		fmt.Fprintf(&b, "%s %s\n", e.EventType(), data)
	}
	return b.String()
}

// then checks the outcome of a command: either the events (wantCode "") or an *Error with the
// code and field.
func then(tb testing.TB, got []domain.Event, err error, want []domain.Event, wantCode, wantField string) {
	tb.Helper()
	if wantCode != "" {
		if err == nil {
			tb.Fatalf("want error %s at %q, got events:\n%s", wantCode, wantField, eventsJSON(tb, got))
		}
		var de *domain.Error
		if !errors.As(err, &de) {
			tb.Fatalf("want *domain.Error, got %T: %v", err, err)
		}
		if de.Code != wantCode || de.Field != wantField {
			tb.Fatalf("want error %s at %q, got %s at %q: %v", wantCode, wantField, de.Code, de.Field, err)
		}
		if de.Message == "" {
			tb.Fatalf("error without a message: %#v", de)
		}
		if got != nil {
			tb.Fatalf("error returned together with events: %v", got)
		}
		return
	}
	if err != nil {
		tb.Fatalf("unexpected error: %v", err)
	}
	if g, w := eventsJSON(tb, got), eventsJSON(tb, want); g != w {
		tb.Fatalf("events differ\n got: %s\nwant: %s", g, w)
	}
}

// ---- A project "acme" with two environments, its segments and flags ----

const project = "acme"

var envs = []string{"production", "staging"}

// initial is the targeting every environment of a new flag starts with.
func initial(off, on string) *domain.Targeting {
	return &domain.Targeting{OffVariation: off, Prerequisites: []domain.Prerequisite{},
		Targets: []domain.Target{}, Rules: []domain.Rule{}, Default: domain.Serve{Variation: on}}
}

// boolCreated is the creation event of a boolean flag key in both environments.
func boolCreated(key string) *domain.FlagCreated {
	return &domain.FlagCreated{Project: project, Key: key, Name: "Flag " + key, Tags: []string{},
		Type: domain.FlagBoolean, Variations: domain.BooleanVariations(), Salt: "salt-" + key,
		Defaults:     domain.FlagDefaults{OnVariation: "true", OffVariation: "false"},
		Environments: map[string]*domain.Targeting{"production": initial("false", "true"), "staging": initial("false", "true")}}
}

// colorCreated is the creation event of a string flag "color" with variations red, green, blue.
func colorCreated() *domain.FlagCreated {
	return &domain.FlagCreated{Project: project, Key: "color", Name: "Color", Tags: []string{"ui"},
		Type: domain.FlagString, Salt: "salt-color",
		Variations: []domain.Variation{{Key: "red", Value: "red"}, {Key: "green", Value: "green"},
			{Key: "blue", Value: "blue"}},
		Defaults:     domain.FlagDefaults{OnVariation: "red", OffVariation: "green"},
		Environments: map[string]*domain.Targeting{"production": initial("green", "red"), "staging": initial("green", "red")}}
}

func foldFlag(tb testing.TB, events ...domain.Event) *domain.Flag {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	f, err := domain.FoldFlag(record(tb, "flag/acme/x", events...))
	if err != nil {
		tb.Fatalf("fold flag: %v", err)
	}
	return f
}

func foldSegment(tb testing.TB, events ...domain.Event) *domain.Segment {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	s, err := fold[domain.Segment](record(tb, "segment/acme/x", events...))
	if err != nil {
		tb.Fatalf("fold segment: %v", err)
	}
	return s
}

// catalog returns the reference data of project acme:
//   - environments production and staging;
//   - segments beta, vip (contains beta), old (archived), internal (used by flag "banner");
//   - flags other (boolean), retired (archived), a (requires flag "color" = red in production),
//     b (requires a in production), banner (rules name segment internal), color (the flag most
//     tests command; listed so that catalog-wide checks see it as other commands would).
func catalog() *domain.Catalog {
	c := domain.NewCatalog()
	c.Environments = append([]string{}, envs...)
	c.Segments["beta"] = domain.SegmentInfo{}
	c.Segments["vip"] = domain.SegmentInfo{Segments: []string{"beta"}}
	c.Segments["old"] = domain.SegmentInfo{Archived: true}
	c.Segments["internal"] = domain.SegmentInfo{}
	boolVars := []string{"true", "false"}
	c.Flags["other"] = domain.FlagInfo{Type: domain.FlagBoolean, Variations: boolVars}
	c.Flags["retired"] = domain.FlagInfo{Type: domain.FlagBoolean, Variations: boolVars, Archived: true}
	c.Flags["a"] = domain.FlagInfo{Type: domain.FlagBoolean, Variations: boolVars,
		Prerequisites: map[string][]domain.Prerequisite{"production": {{Flag: "color", Variation: "red"}}}}
	c.Flags["b"] = domain.FlagInfo{Type: domain.FlagBoolean, Variations: boolVars,
		Prerequisites: map[string][]domain.Prerequisite{"production": {{Flag: "a", Variation: "true"}}}}
	c.Flags["banner"] = domain.FlagInfo{Type: domain.FlagBoolean, Variations: boolVars, Segments: []string{"internal"}}
	c.Flags["color"] = domain.FlagInfo{Type: domain.FlagString, Variations: []string{"red", "green", "blue"}}
	return c
}

// clause builds a clause.
func clause(attr string, op domain.Operator, values ...any) domain.Clause {
	if values == nil {
		values = []any{}
	}
	return domain.Clause{Attribute: attr, Operator: op, Values: values}
}

func strs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func anys(prefix string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// fold rebuilds an aggregate from its stream, event by event with ApplyRecorded as services do
// (projections.Fold); (nil, nil) for an empty stream.
func fold[A any, P interface {
	*A
	ApplyRecorded(domain.RecordedEvent) error
}](events []domain.RecordedEvent) (P, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var a P = new(A)
	for _, r := range events {
		if err := a.ApplyRecorded(r); err != nil {
			return nil, err
		}
	}
	return a, nil
}
