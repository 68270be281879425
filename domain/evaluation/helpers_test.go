package evaluation_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// boolFlag returns an on boolean flag with variations "on" (true) and "off" (false), off
// variation "off" and default "off".
func boolFlag(key string) *domain.FlagConfig {
	return &domain.FlagConfig{
		Key:  key,
		Type: domain.FlagBoolean,
		Variations: []domain.Variation{
			{Key: "on", Value: true},
			{Key: "off", Value: false},
		},
		Salt:    "salt-" + key,
		Version: 3,
		Targeting: domain.Targeting{
			On:           true,
			OffVariation: "off",
			Default:      domain.Serve{Variation: "off"},
		},
	}
}

// stringFlag returns an on string flag with variations a, b, c (values "A", "B", "C"), off
// variation "c" and default "a".
func stringFlag(key string) *domain.FlagConfig {
	return &domain.FlagConfig{
		Key:  key,
		Type: domain.FlagString,
		Variations: []domain.Variation{
			{Key: "a", Value: "A"}, {Key: "b", Value: "B"}, {Key: "c", Value: "C"},
		},
		Salt:    "salt-" + key,
		Version: 1,
		Targeting: domain.Targeting{
			On:           true,
			OffVariation: "c",
			Default:      domain.Serve{Variation: "a"},
		},
	}
}

func ruleset(flags []*domain.FlagConfig, segments ...*domain.Segment) *domain.Ruleset {
	rs := &domain.Ruleset{Project: "p", Environment: "production", Version: 7,
		Flags: map[string]*domain.FlagConfig{}, Segments: map[string]*domain.Segment{}}
	for _, f := range flags {
		rs.Flags[f.Key] = f
	}
	for _, s := range segments {
		rs.Segments[s.Key] = s
	}
	return rs
}

func mustCompile(tb testing.TB, rs *domain.Ruleset) *evaluation.Compiled {
	tb.Helper()
	c, err := evaluation.Compile(rs)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return c
}

// mustCompileClean also fails on compile problems.
func mustCompileClean(tb testing.TB, rs *domain.Ruleset) *evaluation.Compiled {
	tb.Helper()
	c := mustCompile(tb, rs)
	if p := c.Problems(); len(p) > 0 {
		tb.Fatalf("unexpected compile problems: %v", p)
	}
	return c
}

func rule(id string, serve string, clauses ...domain.Clause) domain.Rule {
	return domain.Rule{ID: id, Clauses: clauses, Serve: domain.Serve{Variation: serve}}
}

func cl(attr string, op domain.Operator, values ...any) domain.Clause {
	return domain.Clause{Attribute: attr, Operator: op, Values: values}
}

func neg(c domain.Clause) domain.Clause {
	c.Negate = true
	return c
}

func split(bucketBy string, weights ...any) *domain.Split {
	s := &domain.Split{BucketBy: bucketBy}
	for i := 0; i+1 < len(weights); i += 2 {
		s.Variations = append(s.Variations, domain.WeightedVariation{Variation: weights[i].(string), Weight: weights[i+1].(int)})
	}
	return s
}
