package evaluation_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// An invalid part of a flag is reported by Problems and fails evaluation with PARSE_ERROR (or
// TYPE_MISMATCH) only when evaluation reaches it; the rest of the flag and other flags work.
func TestInvalidConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*domain.FlagConfig)
		attrs   map[string]any
		want    want
		problem string // a substring of the problems
	}{
		{"invalid regexp, rule reached", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("email", domain.OpMatches, "(unclosed"))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "flags.f.targeting.rules[0].clauses[0].values[0]"},
		{"invalid regexp, earlier rule matches", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("ok", "c", cl("plan", domain.OpEquals, "pro")),
				rule("r1", "b", cl("email", domain.OpMatches, "(unclosed"))}
		}, a("plan", "pro"), want{"c", evaluation.ReasonTargetingMatch, "", 0}, "rules[1].clauses[0]"},
		{"unknown operator", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("x", "similar_to", "y"))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "rules[0].clauses[0].op"},
		{"equals with two values", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("x", domain.OpEquals, "y", "z"))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "rules[0].clauses[0].values"},
		{"lt with a string", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("x", domain.OpLT, "5"))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "rules[0].clauses[0].values[0]"},
		{"bad semver value", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("v", domain.OpSemverLT, "1.x"))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "values[0]"},
		{"null value", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", cl("v", domain.OpIn, "a", nil))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "values[1]"},
		{"in_segment with a number", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", inSeg(5.0))}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "values[0]"},
		{"in_segment without values", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "b", inSeg())}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "values"},
		{"unknown rule variation", func(f *domain.FlagConfig) {
			f.Targeting.Rules = []domain.Rule{rule("r1", "zzz")}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, 0}, "rules[0].serve.variation"},
		{"unknown default variation", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Variation: "zzz"}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "targeting.default.variation"},
		{"unknown off variation, flag on", func(f *domain.FlagConfig) {
			f.Targeting.OffVariation = "zzz"
		}, nil, want{"a", evaluation.ReasonDefault, "", -1}, "targeting.off_variation"},
		{"unknown off variation, flag off", func(f *domain.FlagConfig) {
			f.Targeting.On, f.Targeting.OffVariation = false, "zzz"
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "targeting.off_variation"},
		{"unknown target variation", func(f *domain.FlagConfig) {
			f.Targeting.Targets = []domain.Target{{Variation: "zzz", Values: []string{"u"}}}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "targeting.targets[0].variation"},
		{"empty serve", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "neither"},
		{"serve with both", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Variation: "a", Split: split("", "a", 100000)}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "both"},
		{"weights below total", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Split: split("", "a", 50000, "b", 40000)}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "add up to 90000"},
		{"negative weight", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Split: split("", "a", 150000, "b", -50000)}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "weight"},
		{"empty split", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Split: &domain.Split{}}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "split.variations"},
		{"unknown split variation", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Split: split("", "a", 50000, "zzz", 50000)}
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorParse, -1}, "split.variations[1].variation"},
		{"variation of the wrong type, served", func(f *domain.FlagConfig) {
			f.Variations[0].Value = 5.0
		}, nil, want{"", evaluation.ReasonError, evaluation.ErrorTypeMismatch, -1}, "variations[0].value"},
		{"variation of the wrong type, not served", func(f *domain.FlagConfig) {
			f.Variations[1].Value = true
		}, nil, want{"a", evaluation.ReasonDefault, "", -1}, "variations[1].value"},
		{"duplicate variation key", func(f *domain.FlagConfig) {
			f.Variations[2].Key = "a"
		}, nil, want{"a", evaluation.ReasonDefault, "", -1}, "duplicate variation"},
		{"key differs from map key", func(f *domain.FlagConfig) {
			f.Key = "g"
		}, nil, want{"a", evaluation.ReasonDefault, "", -1}, "flags.f.key"},
		{"prerequisite variation unknown", func(f *domain.FlagConfig) {
			requires(f, "other", "zzz")
		}, nil, want{"c", evaluation.ReasonPrerequisiteFailed, "", -1}, "flags.f.targeting.prerequisites[0].variation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := ruleset([]*domain.FlagConfig{stringFlag("f"), boolFlag("other")})
			tc.mutate(rs.Flags["f"])
			c := mustCompile(t, rs)
			check(t, c.Evaluate("f", &evaluation.Context{Key: "u", Attributes: tc.attrs}), tc.want)
			check(t, c.Evaluate("other", nil), want{"off", evaluation.ReasonDefault, "", -1})
			problems := fmt.Sprint(c.Problems())
			if !strings.Contains(problems, tc.problem) {
				t.Fatalf("problems %s lack %q", problems, tc.problem)
			}
			for _, p := range c.Problems() {
				if p.Code != domain.EInvalid || p.Field == "" {
					t.Fatalf("problem without code or field: %+v", p)
				}
			}
		})
	}
}
