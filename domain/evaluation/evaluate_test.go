package evaluation_test

import (
	"slices"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// want is the part of a Result a table test checks.
type want struct {
	variation string
	reason    string
	errorCode string
	ruleIndex int
}

func check(t *testing.T, got evaluation.Result, w want) {
	t.Helper()
	if got.Variation != w.variation || got.Reason != w.reason || got.ErrorCode != w.errorCode || got.RuleIndex != w.ruleIndex {
		t.Fatalf("got variation %q reason %s error %q rule %d (%s), want variation %q reason %s error %q rule %d",
			got.Variation, got.Reason, got.ErrorCode, got.RuleIndex, got.ErrorMessage, w.variation, w.reason, w.errorCode, w.ruleIndex)
	}
	if got.IsError() && (got.Value != nil || got.VariationIndex != -1 || got.ErrorMessage == "") {
		t.Fatalf("error result with a value or without a message: %+v", got)
	}
}

func TestEvaluationOrder(t *testing.T) {
	base := func() *domain.FlagConfig {
		f := stringFlag("f")
		f.Targeting.Targets = []domain.Target{{Variation: "b", Values: []string{"vip", "both"}}, {Variation: "c", Values: []string{"both", "other"}}}
		f.Targeting.Rules = []domain.Rule{
			rule("pro", "b", cl("plan", domain.OpEquals, "pro")),
			rule("nl", "c", cl("country", domain.OpEquals, "NL")),
			rule("everyone-nl", "a", cl("country", domain.OpEquals, "NL")),
		}
		return f
	}
	tests := []struct {
		name   string
		mutate func(*domain.FlagConfig)
		key    string
		attrs  map[string]any
		want   want
	}{
		{"default", nil, "u", nil, want{"a", evaluation.ReasonDefault, "", -1}},
		{"first rule", nil, "u", a("plan", "pro", "country", "NL"), want{"b", evaluation.ReasonTargetingMatch, "", 0}},
		{"second rule, first match wins", nil, "u", a("country", "NL"), want{"c", evaluation.ReasonTargetingMatch, "", 1}},
		{"target beats rules", nil, "vip", a("country", "NL"), want{"b", evaluation.ReasonTargetingMatch, "", -1}},
		{"first target listing a key wins", nil, "both", nil, want{"b", evaluation.ReasonTargetingMatch, "", -1}},
		{"second target", nil, "other", nil, want{"c", evaluation.ReasonTargetingMatch, "", -1}},
		{"off beats targets", func(f *domain.FlagConfig) { f.Targeting.On = false }, "vip", nil, want{"c", evaluation.ReasonDisabled, "", -1}},
		{"off without off variation", func(f *domain.FlagConfig) { f.Targeting.On, f.Targeting.OffVariation = false, "" }, "vip", nil, want{"", evaluation.ReasonDisabled, "", -1}},
		{"rule without clauses matches all", func(f *domain.FlagConfig) {
			f.Targeting.Rules = append([]domain.Rule{rule("all", "c")}, f.Targeting.Rules...)
		}, "u", nil, want{"c", evaluation.ReasonTargetingMatch, "", 0}},
		{"default split", func(f *domain.FlagConfig) {
			f.Targeting.Default = domain.Serve{Split: split("", "b", 100000)}
		}, "u", nil, want{"b", evaluation.ReasonSplit, "", -1}},
		{"rule split", func(f *domain.FlagConfig) {
			f.Targeting.Rules[0].Serve = domain.Serve{Split: split("", "a", 0, "c", 100000)}
		}, "u", a("plan", "pro"), want{"c", evaluation.ReasonSplit, "", 0}},
		{"empty targeting key never matches targets", func(f *domain.FlagConfig) {
			f.Targeting.Targets[0].Values = append(f.Targeting.Targets[0].Values, "")
		}, "", nil, want{"a", evaluation.ReasonDefault, "", -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(f)
			}
			c := mustCompileClean(t, ruleset([]*domain.FlagConfig{f}))
			res := c.Evaluate("f", &evaluation.Context{Key: tc.key, Attributes: tc.attrs})
			check(t, res, tc.want)
			if res.FlagKey != "f" || res.FlagVersion != 1 {
				t.Fatalf("flag key/version: %+v", res)
			}
			if res.Variation != "" {
				if want := map[string]any{"a": "A", "b": "B", "c": "C"}[res.Variation]; res.Value != want {
					t.Fatalf("value %v, want %v", res.Value, want)
				}
				if res.VariationIndex != int(res.Variation[0]-'a') {
					t.Fatalf("variation index %d for %s", res.VariationIndex, res.Variation)
				}
			} else if res.Value != nil || res.VariationIndex != -1 {
				t.Fatalf("no variation but value %v index %d", res.Value, res.VariationIndex)
			}
			if res.RuleIndex >= 0 && res.RuleID != f.Targeting.Rules[res.RuleIndex].ID {
				t.Fatalf("rule id %q for rule %d", res.RuleID, res.RuleIndex)
			}
			if (res.Reason == evaluation.ReasonSplit) != (res.Bucket >= 0) {
				t.Fatalf("bucket %d with reason %s", res.Bucket, res.Reason)
			}
		})
	}
}

func TestFlagNotFound(t *testing.T) {
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{boolFlag("f")}))
	// Archived flags are dropped from rulesets by the projector, so they are missing here too.
	for _, key := range []string{"missing", "", "F"} {
		res := c.Evaluate(key, &evaluation.Context{Key: "u"})
		check(t, res, want{"", evaluation.ReasonError, evaluation.ErrorFlagNotFound, -1})
		if res.FlagKey != key || res.FlagVersion != 0 || res.Bucket != -1 {
			t.Fatalf("%+v", res)
		}
	}
	rs := ruleset([]*domain.FlagConfig{boolFlag("f")})
	rs.Flags["nil"] = nil
	c = mustCompileClean(t, rs)
	check(t, c.Evaluate("nil", nil), want{"", evaluation.ReasonError, evaluation.ErrorFlagNotFound, -1})
	if slices.Contains(c.Flags(), "nil") {
		t.Fatal("a nil flag config is listed")
	}
}

func TestNilCompiledAndContext(t *testing.T) {
	var c *evaluation.Compiled
	check(t, c.Evaluate("f", nil), want{"", evaluation.ReasonError, evaluation.ErrorGeneral, -1})
	if c.EvaluateAll(nil, nil) != nil {
		t.Fatal("EvaluateAll on nil")
	}
	if _, err := evaluation.Compile(nil); err == nil {
		t.Fatal("Compile(nil) succeeded")
	}
	f := boolFlag("f")
	f.Targeting.Rules = []domain.Rule{rule("r", "on", cl("plan", domain.OpNotEquals, "pro"))}
	c = mustCompileClean(t, ruleset([]*domain.FlagConfig{f}))
	check(t, c.Evaluate("f", nil), want{"on", evaluation.ReasonTargetingMatch, "", 0})
	check(t, c.Evaluate("f", &evaluation.Context{}), want{"on", evaluation.ReasonTargetingMatch, "", 0})
}

func TestAccessors(t *testing.T) {
	b, s := boolFlag("b"), stringFlag("a")
	s.ClientSide = true
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{b, s, boolFlag("c")}))
	if got := c.Flags(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Flags() = %v", got)
	}
	c.Flags()[0] = "x"
	if c.Flags()[0] != "a" {
		t.Fatal("Flags() exposes internal state")
	}
	if cfg, ok := c.Flag("b"); !ok || cfg != b {
		t.Fatal("Flag(b)")
	}
	if _, ok := c.Flag("z"); ok {
		t.Fatal("Flag(z)")
	}
	if c.Version() != 7 || c.Project() != "p" || c.Environment() != "production" {
		t.Fatalf("version %d project %s env %s", c.Version(), c.Project(), c.Environment())
	}
	all := c.EvaluateAll(&evaluation.Context{Key: "u"}, nil)
	if len(all) != 3 || all[0].FlagKey != "a" || all[1].FlagKey != "b" || all[2].FlagKey != "c" {
		t.Fatalf("EvaluateAll: %+v", all)
	}
	client := c.EvaluateAll(&evaluation.Context{Key: "u"}, func(f *domain.FlagConfig) bool { return f.ClientSide })
	if len(client) != 1 || client[0].FlagKey != "a" || client[0].Value != "A" {
		t.Fatalf("client-side EvaluateAll: %+v", client)
	}
	buf := c.AppendAll(make([]evaluation.Result, 0, 8), nil, nil)
	if len(buf) != 3 {
		t.Fatalf("AppendAll: %d", len(buf))
	}
}

func TestWithType(t *testing.T) {
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{boolFlag("b"), stringFlag("s")}))
	r := c.Evaluate("b", nil)
	if got := r.WithType(domain.FlagBoolean); got != r {
		t.Fatalf("WithType(boolean) changed a boolean result: %+v", got)
	}
	check(t, r.WithType(domain.FlagString), want{"", evaluation.ReasonError, evaluation.ErrorTypeMismatch, -1})
	check(t, c.Evaluate("s", nil).WithType(domain.FlagNumber), want{"", evaluation.ReasonError, evaluation.ErrorTypeMismatch, -1})
	nf := c.Evaluate("nope", nil)
	if nf.WithType(domain.FlagBoolean).ErrorCode != evaluation.ErrorFlagNotFound {
		t.Fatal("WithType hides FLAG_NOT_FOUND")
	}
}

func TestFromOpenFeature(t *testing.T) {
	ctx := evaluation.FromOpenFeature(map[string]any{"targetingKey": "u1", "plan": "pro"})
	if ctx.Key != "u1" || len(ctx.Attributes) != 1 || ctx.Attributes["plan"] != "pro" {
		t.Fatalf("%+v", ctx)
	}
	ctx = evaluation.FromOpenFeature(map[string]any{"targetingKey": 5.0})
	if ctx.Key != "" || len(ctx.Attributes) != 0 {
		t.Fatalf("%+v", ctx)
	}
	ctx = evaluation.FromOpenFeature(map[string]any{"plan": "pro"})
	if ctx.Key != "" || ctx.Attributes["plan"] != "pro" {
		t.Fatalf("%+v", ctx)
	}
}
