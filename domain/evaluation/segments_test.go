package evaluation_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

func seg(key, match string, included, excluded []string, clauses ...domain.Clause) *domain.Segment {
	return &domain.Segment{Project: "p", Key: key, Name: key, Match: match, Included: included, Excluded: excluded, Clauses: clauses}
}

func inSeg(keys ...any) domain.Clause { return cl("", domain.OpInSegment, keys...) }

func TestSegments(t *testing.T) {
	segs := []*domain.Segment{
		seg("beta", domain.MatchAll, []string{"inc"}, []string{"exc", "both"},
			cl("plan", domain.OpEquals, "pro"), cl("country", domain.OpIn, "NL", "BE")),
		seg("anyof", domain.MatchAny, []string{"both"}, nil,
			cl("plan", domain.OpEquals, "pro"), cl("country", domain.OpIn, "NL", "BE")),
		seg("listonly", domain.MatchAll, []string{"inc"}, nil),
		seg("defaultmatch", "", nil, nil, cl("plan", domain.OpEquals, "pro"), cl("beta", domain.OpEquals, true)),
		seg("nested", domain.MatchAny, nil, []string{"nested-exc"}, inSeg("beta"), cl("plan", domain.OpEquals, "team")),
		seg("nested2", domain.MatchAll, nil, nil, inSeg("nested"), cl("country", domain.OpEquals, "NL")),
		seg("not-beta", domain.MatchAll, nil, nil, neg(inSeg("beta"))),
		{Key: "archived", Match: domain.MatchAll, Included: []string{"inc"}, Archived: true},
	}
	tests := []struct {
		name    string
		clause  domain.Clause
		key     string
		attrs   map[string]any
		matches bool
	}{
		{"all clauses", inSeg("beta"), "u", a("plan", "pro", "country", "NL"), true},
		{"all: one clause fails", inSeg("beta"), "u", a("plan", "pro", "country", "US"), false},
		{"included beats clauses", inSeg("beta"), "inc", nil, true},
		{"excluded beats clauses", inSeg("beta"), "exc", a("plan", "pro", "country", "NL"), false},
		{"excluded beats included", inSeg("beta"), "both", nil, false},
		{"any: one clause", inSeg("anyof"), "u", a("country", "BE"), true},
		{"any: none", inSeg("anyof"), "u", a("country", "US"), false},
		{"any: included", inSeg("anyof"), "both", nil, true},
		{"no clauses: only included", inSeg("listonly"), "inc", nil, true},
		{"no clauses: nobody else", inSeg("listonly"), "u", a("plan", "pro"), false},
		{"empty match is all", inSeg("defaultmatch"), "u", a("plan", "pro"), false},
		{"empty match is all, both", inSeg("defaultmatch"), "u", a("plan", "pro", "beta", true), true},
		{"in any of several", inSeg("listonly", "anyof"), "u", a("plan", "pro"), true},
		{"nested", inSeg("nested"), "inc", nil, true},
		{"nested own clause", inSeg("nested"), "u", a("plan", "team"), true},
		{"nested excluded", inSeg("nested"), "nested-exc", a("plan", "team"), false},
		{"two levels", inSeg("nested2"), "inc", a("country", "NL"), true},
		{"two levels fails", inSeg("nested2"), "inc", a("country", "BE"), false},
		{"negated nested", inSeg("not-beta"), "u", nil, true},
		{"negated nested in beta", inSeg("not-beta"), "inc", nil, false},
		{"negated clause", neg(inSeg("beta")), "inc", nil, false},
		{"unknown segment is empty", inSeg("nope"), "inc", nil, false},
		{"unknown segment negated", neg(inSeg("nope")), "inc", nil, true},
		{"archived segment is empty", inSeg("archived"), "inc", nil, false},
		{"no key: clauses only", inSeg("beta"), "", a("plan", "pro", "country", "NL"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := boolFlag("f")
			f.Targeting.Rules = []domain.Rule{rule("r", "on", tc.clause)}
			c := mustCompileClean(t, ruleset([]*domain.FlagConfig{f}, segs...))
			res := c.Evaluate("f", &evaluation.Context{Key: tc.key, Attributes: tc.attrs})
			if res.IsError() || (res.Variation == "on") != tc.matches {
				t.Fatalf("got %+v, want match %v", res, tc.matches)
			}
		})
	}
}

func TestSegmentCyclesAndLimits(t *testing.T) {
	// a -> b -> a is a cycle; c leads into it; d is a self-loop; ok uses neither.
	segs := []*domain.Segment{
		seg("a", domain.MatchAll, nil, nil, inSeg("b")),
		seg("b", domain.MatchAny, []string{"u"}, nil, inSeg("a")),
		seg("c", domain.MatchAny, []string{"u"}, nil, inSeg("a")),
		seg("d", domain.MatchAny, []string{"u"}, nil, inSeg("d")),
		seg("ok", domain.MatchAll, []string{"u"}, nil),
		seg("badre", domain.MatchAll, nil, nil, cl("x", domain.OpMatches, "(")),
		seg("usesbad", domain.MatchAny, []string{"u"}, nil, inSeg("badre")),
		seg("badmatch", "some", []string{"u"}, nil),
	}
	// A diamond ladder: level i names level i+1 twice (two clauses), so nesting doubles the
	// segment checks at every level: 2^12 checks exceed MaxSegmentEvaluations.
	for i := 0; i < 12; i++ {
		segs = append(segs, seg(fmt.Sprintf("l%02d", i), domain.MatchAny, nil, nil,
			inSeg(fmt.Sprintf("l%02d", i+1)), neg(inSeg(fmt.Sprintf("l%02d", i+1)))))
	}
	segs = append(segs, seg("l12", domain.MatchAll, []string{"u"}, nil))
	for _, tc := range []struct {
		seg     string
		invalid bool
	}{
		{"a", true}, {"b", true}, {"c", true}, {"d", true}, {"ok", false},
		{"badre", true}, {"usesbad", true}, {"badmatch", true},
		{"l00", true}, {"l03", true}, {"l04", false}, // cost(l_i) = 2^(13-i) - 1
	} {
		t.Run(tc.seg, func(t *testing.T) {
			f := boolFlag("f")
			f.Targeting.Rules = []domain.Rule{rule("r", "on", inSeg(tc.seg))}
			c := mustCompile(t, ruleset([]*domain.FlagConfig{f}, segs...))
			res := c.Evaluate("f", &evaluation.Context{Key: "u"})
			if tc.invalid {
				check(t, res, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0})
				if !strings.Contains(res.ErrorMessage, "segment") {
					t.Fatalf("message %q", res.ErrorMessage)
				}
			} else {
				check(t, res, want{"on", evaluation.ReasonTargetingMatch, "", 0})
			}
		})
	}
	c := mustCompile(t, ruleset(nil, segs...))
	problems := fmt.Sprint(c.Problems())
	for _, s := range []string{"segments.a", "segments.b", "segments.d", "segments.badre.clauses[0]", "segments.badmatch.match", "segments.l00"} {
		if !strings.Contains(problems, s) {
			t.Errorf("problems lack %s: %s", s, problems)
		}
	}
}
