package web

import (
	"fmt"
	"net/url"
	"reflect"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

// The targeting editor's form is outside input: whatever is posted, reading it never panics, and
// a targeting rendered into the form reads back as the same targeting (what a person sees is what
// is saved).
func FuzzTargetingForm(f *testing.F) {
	f.Add("on=true&off_variation=a&rules[0].id=r&rules[0].clauses[0].op=in&rules[0].clauses[0].attribute=country&rules[0].clauses[0].values=FR%0A3&rules[0].serve.kind=split&rules[0].serve.split.a=10&rules[0].serve.split.b=90&default.variation=a", "up:0")
	f.Add("rules[0].id=&rules[0].position=x&rules[1].id=&rules[1].position=-1&default.kind=split&default.split.a=abc", "remove-clause:0:0")
	f.Add("prerequisites[0].flag=x&prerequisites[0].variation=on&targets.b=u1%0Au2", "add-clause:9")
	f.Fuzz(func(t *testing.T, body, action string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		vs := []domain.Variation{{Key: "a", Value: "A"}, {Key: "b", Value: "B"}}
		d := parseDraft(form, vs)
		d.apply(action)
		_, _ = d.targeting(vs)
	})
}

func TestTargetingRoundTripsThroughTheForm(t *testing.T) {
	vs := []domain.Variation{{Key: "a", Value: "A"}, {Key: "b", Value: "B"}}
	in := domain.Targeting{On: true, OffVariation: "a", Prerequisites: []domain.Prerequisite{{Flag: "p", Variation: "on"}},
		Targets: []domain.Target{{Variation: "b", Values: []string{"u1", "u2"}}},
		Rules: []domain.Rule{{ID: "rule-1", Description: "French", Clauses: []domain.Clause{
			{Attribute: "country", Operator: domain.OpIn, Values: []any{"FR", "42", 42.0, true}},
			{Attribute: "age", Operator: domain.OpGTE, Values: []any{18.0}, Negate: true},
			{Operator: domain.OpInSegment, Values: []any{"beta"}}},
			Serve: domain.Serve{Split: &domain.Split{BucketBy: "org", Variations: []domain.WeightedVariation{{Variation: "a", Weight: 12500}, {Variation: "b", Weight: 87500}}}}}},
		Default: domain.Serve{Variation: "b"}}
	form := formOf(draftOf(in))
	out, err := parseDraft(form, vs).targeting(vs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in  %#v\n out %#v", in, out)
	}
}

// formOf posts a draft as the editor's form would.
func formOf(d targetingDraft) url.Values {
	f := url.Values{}
	if d.On {
		f.Set("on", "true")
	}
	f.Set("off_variation", d.OffVariation)
	for k, v := range d.Targets {
		f.Set("targets."+k, v)
	}
	for i, p := range d.Prerequisites {
		f.Set(fieldName("prerequisites[%d].flag", i), p.Flag)
		f.Set(fieldName("prerequisites[%d].variation", i), p.Variation)
	}
	serve := func(prefix string, s serveDraft) {
		f.Set(prefix+".kind", s.Kind)
		f.Set(prefix+".variation", s.Variation)
		f.Set(prefix+".split.bucket_by", s.BucketBy)
		for k, w := range s.Weights {
			f.Set(prefix+".split."+k, w)
		}
	}
	for i, r := range d.Rules {
		f.Set(fieldName("rules[%d].id", i), r.ID)
		f.Set(fieldName("rules[%d].description", i), r.Description)
		for j, c := range r.Clauses {
			p := fieldName("rules[%d].clauses[", i) + fieldName("%d]", j)
			f.Set(p+".attribute", c.Attribute)
			f.Set(p+".op", c.Op)
			f.Set(p+".values", c.Values)
			f[p+".segments"] = c.Segments
			if c.Negate {
				f.Set(p+".negate", "true")
			}
		}
		serve(fieldName("rules[%d].serve", i), r.Serve)
	}
	serve("default", d.Default)
	return f
}

func fieldName(format string, i int) string { return fmt.Sprintf(format, i) }
