package evaluation_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

func experimentRuleset(allocation int) *domain.Ruleset {
	return &domain.Ruleset{Project: "p", Environment: "e", Version: 1, Flags: map[string]*domain.FlagConfig{
		"checkout": {Key: "checkout", Type: domain.FlagString, Salt: "salt", Version: 3,
			Variations: []domain.Variation{{Key: "control", Value: "A"}, {Key: "treatment", Value: "B"}, {Key: "other", Value: "C"}},
			Targeting: domain.Targeting{On: true, OffVariation: "control",
				Targets: []domain.Target{{Variation: "other", Values: []string{"vip"}}},
				Rules: []domain.Rule{{ID: "staff", Clauses: []domain.Clause{{Attribute: "staff", Operator: domain.OpEquals, Values: []any{true}}},
					Serve: domain.Serve{Variation: "other"}}},
				Default: domain.Serve{Variation: "control"}},
			Experiment: &domain.ExperimentSplit{Key: "exp-1", Seed: "seed-1", Allocation: allocation,
				Variations: []domain.WeightedVariation{{Variation: "control", Weight: 50000}, {Variation: "treatment", Weight: 50000}}},
		}}}
}

func TestExperimentServing(t *testing.T) {
	c, err := evaluation.Compile(experimentRuleset(20000)) // 20% of eligible users
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	// Targets and rules keep their users out of the experiment.
	if r := c.Evaluate("checkout", &evaluation.Context{Key: "vip"}); r.Experiment != "" || r.Variation != "other" {
		t.Fatalf("target: %+v", r)
	}
	if r := c.Evaluate("checkout", &evaluation.Context{Key: "u", Attributes: map[string]any{"staff": true}}); r.Experiment != "" || r.Variation != "other" {
		t.Fatalf("rule: %+v", r)
	}
	// No targeting key: never an experiment unit, gets the default.
	if r := c.Evaluate("checkout", &evaluation.Context{}); r.Experiment != "" || r.Variation != "control" || r.Reason != evaluation.ReasonDefault {
		t.Fatalf("no key: %+v", r)
	}
	const n = 100000
	in, treated := 0, 0
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("user-%d", i)
		r := c.Evaluate("checkout", &evaluation.Context{Key: key})
		admitted := evaluation.Bucket(evaluation.ExperimentAllocationSeed("seed-1"), "salt", key) < 20000
		if admitted != (r.Experiment == "exp-1") {
			t.Fatalf("%s: admitted %v but result %+v", key, admitted, r)
		}
		if !admitted {
			if r.Variation != "control" || r.Reason != evaluation.ReasonDefault {
				t.Fatalf("%s outside the allocation: %+v", key, r)
			}
			continue
		}
		in++
		if r.Reason != evaluation.ReasonSplit {
			t.Fatalf("%s: reason %s", key, r.Reason)
		}
		want := "control"
		if evaluation.Bucket("seed-1", "salt", key) >= 50000 {
			want = "treatment"
		}
		if r.Variation != want {
			t.Fatalf("%s: variation %s, want %s", key, r.Variation, want)
		}
		if r.Variation == "treatment" {
			treated++
		}
	}
	if math.Abs(float64(in)/n-0.2) > 0.01 || math.Abs(float64(treated)/float64(in)-0.5) > 0.01 {
		t.Fatalf("allocation %.4f, treatment share %.4f", float64(in)/n, float64(treated)/float64(in))
	}
	// Raising the allocation keeps everyone already in where they were.
	wider, _ := evaluation.Compile(experimentRuleset(50000))
	for i := 0; i < 20000; i++ {
		key := fmt.Sprintf("user-%d", i)
		a := c.Evaluate("checkout", &evaluation.Context{Key: key})
		b := wider.Evaluate("checkout", &evaluation.Context{Key: key})
		if a.Experiment != "" && (b.Experiment == "" || a.Variation != b.Variation) {
			t.Fatalf("%s moved from %+v to %+v", key, a, b)
		}
	}
}

func TestBrokenExperimentIsAProblemNotAPanic(t *testing.T) {
	for name, mutate := range map[string]func(*domain.ExperimentSplit){
		"no seed":            func(x *domain.ExperimentSplit) { x.Seed = "" },
		"zero allocation":    func(x *domain.ExperimentSplit) { x.Allocation = 0 },
		"unknown variation":  func(x *domain.ExperimentSplit) { x.Variations[0].Variation = "ghost" },
		"weights off by one": func(x *domain.ExperimentSplit) { x.Variations[0].Weight-- },
	} {
		rs := experimentRuleset(100000)
		mutate(rs.Flags["checkout"].Experiment)
		c, err := evaluation.Compile(rs)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Problems()) == 0 {
			t.Errorf("%s: no problem reported", name)
		}
		_ = c.Evaluate("checkout", &evaluation.Context{Key: "u"})
	}
}
