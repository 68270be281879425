package vexil_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

func cl(attr string, op domain.Operator, values ...any) domain.Clause {
	return domain.Clause{Attribute: attr, Operator: op, Values: values}
}

func rule(id string, clauses ...domain.Clause) domain.Rule {
	return domain.Rule{ID: id, Clauses: clauses, Serve: domain.Serve{Variation: "b"}}
}

// tenRuleRuleset holds the 10-rule flag of domain/evaluation's BenchmarkEvaluate (10 rules of 3
// clauses with mixed operators, one regular expression, one long in-list); for tenRuleContext
// every rule is tried, 29 clauses are evaluated, and rule 10 matches and serves a split.
func tenRuleRuleset() *domain.Ruleset {
	var countries []any
	for i := 0; i < 50; i++ {
		countries = append(countries, fmt.Sprintf("X%02d", i))
	}
	f := &domain.FlagConfig{Key: "bench", Type: domain.FlagString, Salt: "salt-bench", Version: 1,
		Variations: []domain.Variation{{Key: "a", Value: "A"}, {Key: "b", Value: "B"}, {Key: "c", Value: "C"}},
		Targeting: domain.Targeting{On: true, OffVariation: "c", Default: domain.Serve{Variation: "a"}, Rules: []domain.Rule{
			rule("r1", cl("country", domain.OpIn, "NL", "BE", "DE"), cl("plan", domain.OpEquals, "pro"), cl("age", domain.OpLT, 18.0)),
			rule("r2", cl("email", domain.OpEndsWith, "@example.com"), cl("beta", domain.OpEquals, true), cl("platform", domain.OpIn, "android")),
			rule("r3", cl("age", domain.OpGTE, 21.0), cl("app_version", domain.OpSemverGT, "2.0.0"), cl("email", domain.OpMatches, `^[a-z]+@corp\.example\.com$`)),
			rule("r4", cl("signup", domain.OpAfter, "2020-01-01T00:00:00Z"), cl("country", domain.OpNotIn, "US", "CA"), cl("plan", domain.OpEquals, "enterprise")),
			rule("r5", cl("org", domain.OpStartsWith, "ac"), cl("tags", domain.OpIn, "b"), cl("country", domain.OpIn, countries...)),
			rule("r6", cl("platform", domain.OpEquals, "ios"), cl("age", domain.OpLTE, 100.0), cl("app_version", domain.OpSemverLT, "2.0.0")),
			rule("r7", cl("email", domain.OpContains, "@"), cl("beta", domain.OpExists), cl("signup", domain.OpBefore, 1577836800000.0)),
			rule("r8", cl("plan", domain.OpIn, "pro", "team"), cl("country", domain.OpEquals, "NL"), cl("beta", domain.OpEquals, false)),
			rule("r9", cl("key", domain.OpStartsWith, "user-"), cl("age", domain.OpGT, 30.0), cl("org", domain.OpEquals, "globex")),
			{ID: "r10", Clauses: []domain.Clause{cl("country", domain.OpIn, "NL"), cl("plan", domain.OpEquals, "pro"), cl("age", domain.OpGTE, 18.0)},
				Serve: domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{
					{Variation: "a", Weight: 33000}, {Variation: "b", Weight: 33000}, {Variation: "c", Weight: 34000}}}}},
		}}}
	return &domain.Ruleset{Project: "p", Environment: "production", Version: 1,
		Flags: map[string]*domain.FlagConfig{"bench": f}, Segments: map[string]*domain.Segment{}}
}

// tenRuleContext is the flattened OpenFeature context of the benchmark (what the OpenFeature
// client hands the provider).
func tenRuleContext() openfeature.FlattenedContext {
	return openfeature.FlattenedContext{openfeature.TargetingKey: "user-123",
		"country": "NL", "plan": "pro", "email": "alice@example.com", "age": 34.0,
		"app_version": "2.3.1", "beta": true, "signup": "2023-05-01T10:00:00Z",
		"platform": "ios", "tags": []any{"a", "b"}, "org": "acme"}
}

// BenchmarkLocalEvaluation10Rules is the figure: a provider's local evaluation of a
// 10-rule flag, from the flattened context to OpenFeature's resolution detail.
func BenchmarkLocalEvaluation10Rules(b *testing.B) {
	f := newFakeServer(b, tenRuleRuleset())
	p := newBenchProvider(b, f.srv.URL)
	ctx := tenRuleContext()
	if d := p.StringEvaluation(bg, "bench", "x", ctx); d.Reason != openfeature.SplitReason || d.Error() != nil {
		b.Fatalf("the benchmark case does not reach rule 10's split: %+v", d)
	}
	b.ReportAllocs()
	cpuPerOp(b, func() {
		for b.Loop() {
			p.StringEvaluation(bg, "bench", "x", ctx)
		}
	})
}

// BenchmarkLocalEvaluationThroughOpenFeature is the same through an OpenFeature client, what an
// application calls (the SDK's hooks, context merging and flattening included).
func BenchmarkLocalEvaluationThroughOpenFeature(b *testing.B) {
	f := newFakeServer(b, tenRuleRuleset())
	p := newTestProvider(b, f.srv.URL, nil)
	if err := openfeature.SetNamedProviderAndWait("bench", p); err != nil {
		b.Fatal(err)
	}
	client := openfeature.NewClient("bench")
	flat := tenRuleContext()
	key := flat[openfeature.TargetingKey].(string)
	delete(flat, openfeature.TargetingKey)
	ec := openfeature.NewEvaluationContext(key, flat)
	if d, err := client.StringValueDetails(bg, "bench", "x", ec); err != nil || d.Reason != openfeature.SplitReason {
		b.Fatalf("%+v %v", d, err)
	}
	b.ReportAllocs()
	cpuPerOp(b, func() {
		for b.Loop() {
			_, _ = client.StringValue(bg, "bench", "x", ec)
		}
	})
}

// cpuPerOp reports the process's CPU time (user + system) per operation as "cpu-ns/op", next to
// the wall-clock ns/op. On a shared machine (eight builds on two cores) ns/op measures the
// queue for the CPU; CPU time per operation measures the work.
func cpuPerOp(b *testing.B, run func()) {
	before := cpuTime()
	run()
	b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvaluatorAlone is domain/evaluation's Evaluate on the same flag and context, run
// here so that the provider's own cost (context conversion, typing, metadata, counters) reads
// as the difference between two figures of one run.
func BenchmarkEvaluatorAlone(b *testing.B) {
	c, err := evaluation.Compile(tenRuleRuleset())
	if err != nil {
		b.Fatal(err)
	}
	flat := tenRuleContext()
	ctx := &evaluation.Context{Key: flat[openfeature.TargetingKey].(string), Attributes: flat}
	b.ReportAllocs()
	cpuPerOp(b, func() {
		for b.Loop() {
			c.Evaluate("bench", ctx)
		}
	})
}
