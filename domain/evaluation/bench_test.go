package evaluation_test

import (
	"fmt"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// benchFlag is the benchmark case of the issue: 10 rules of 3 clauses with mixed operators (one
// regular expression, one long in-list); for benchContext the first two clauses of rules 1-9
// match and the third does not, so every rule and 29 clauses are evaluated before rule 10
// matches and serves a split.
func benchFlag(key string) *domain.FlagConfig {
	f := stringFlag(key)
	var countries []any
	for i := 0; i < 50; i++ {
		countries = append(countries, fmt.Sprintf("X%02d", i))
	}
	f.Targeting.Rules = []domain.Rule{
		rule("r1", "b", cl("country", domain.OpIn, "NL", "BE", "DE"), cl("plan", domain.OpEquals, "pro"), cl("age", domain.OpLT, 18.0)),
		rule("r2", "b", cl("email", domain.OpEndsWith, "@example.com"), cl("beta", domain.OpEquals, true), cl("platform", domain.OpIn, "android")),
		rule("r3", "b", cl("age", domain.OpGTE, 21.0), cl("app_version", domain.OpSemverGT, "2.0.0"), cl("email", domain.OpMatches, `^[a-z]+@corp\.example\.com$`)),
		rule("r4", "b", cl("signup", domain.OpAfter, "2020-01-01T00:00:00Z"), cl("country", domain.OpNotIn, "US", "CA"), cl("plan", domain.OpEquals, "enterprise")),
		rule("r5", "b", cl("org", domain.OpStartsWith, "ac"), cl("tags", domain.OpIn, "b"), cl("country", domain.OpIn, countries...)),
		rule("r6", "b", cl("platform", domain.OpEquals, "ios"), cl("age", domain.OpLTE, 100.0), cl("app_version", domain.OpSemverLT, "2.0.0")),
		rule("r7", "b", cl("email", domain.OpContains, "@"), cl("beta", domain.OpExists), cl("signup", domain.OpBefore, 1577836800000.0)),
		rule("r8", "b", cl("plan", domain.OpIn, "pro", "team"), cl("country", domain.OpEquals, "NL"), cl("beta", domain.OpEquals, false)),
		rule("r9", "b", cl("key", domain.OpStartsWith, "user-"), cl("age", domain.OpGT, 30.0), cl("org", domain.OpEquals, "globex")),
		{ID: "r10", Clauses: []domain.Clause{cl("country", domain.OpIn, "NL"), cl("plan", domain.OpEquals, "pro"), cl("age", domain.OpGTE, 18.0)},
			Serve: domain.Serve{Split: split("", "a", 33000, "b", 33000, "c", 34000)}},
	}
	return f
}

func benchContext() *evaluation.Context {
	return &evaluation.Context{Key: "user-123", Attributes: map[string]any{
		"country": "NL", "plan": "pro", "email": "alice@example.com", "age": 34.0,
		"app_version": "2.3.1", "beta": true, "signup": "2023-05-01T10:00:00Z",
		"platform": "ios", "tags": []any{"a", "b"}, "org": "acme",
	}}
}

func BenchmarkEvaluate(b *testing.B) {
	c := mustCompileClean(b, ruleset([]*domain.FlagConfig{benchFlag("bench")}))
	ctx := benchContext()
	if r := c.Evaluate("bench", ctx); r.Reason != evaluation.ReasonSplit || r.RuleIndex != 9 {
		b.Fatalf("benchmark case does not reach the split of rule 10: %+v", r)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Evaluate("bench", ctx)
	}
}

func BenchmarkEvaluateAll100(b *testing.B) {
	var flags []*domain.FlagConfig
	for i := 0; i < 100; i++ {
		flags = append(flags, benchFlag(fmt.Sprintf("flag-%03d", i)))
	}
	c := mustCompileClean(b, ruleset(flags))
	ctx := benchContext()
	b.ReportAllocs()
	for b.Loop() {
		c.EvaluateAll(ctx, nil)
	}
}

func BenchmarkBucket(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		evaluation.Bucket("new-checkout", "3f2a9c", "user-123")
	}
}

// TestEvaluateDoesNotAllocate guards the allocation budget of the benchmark case (at most 2).
func TestEvaluateDoesNotAllocate(t *testing.T) {
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{benchFlag("bench")}))
	ctx := benchContext()
	if n := testing.AllocsPerRun(1000, func() { c.Evaluate("bench", ctx) }); n > 0 {
		t.Fatalf("Evaluate allocates %.1f times per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.EvaluateAll(ctx, nil) }); n > 1 {
		t.Fatalf("EvaluateAll allocates %.1f times per call", n)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	var flags []*domain.FlagConfig
	for i := 0; i < 10; i++ {
		flags = append(flags, benchFlag(fmt.Sprintf("flag-%d", i)))
	}
	c := mustCompileClean(t, ruleset(flags))
	want := c.EvaluateAll(benchContext(), nil)
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func() {
			ok := true
			for i := 0; i < 200; i++ {
				got := c.EvaluateAll(benchContext(), nil)
				for j := range got {
					ok = ok && sameResult(got[j], want[j]) && c.Evaluate(got[j].FlagKey, benchContext()) == got[j]
				}
			}
			done <- ok
		}()
	}
	for g := 0; g < 8; g++ {
		if !<-done {
			t.Fatal("concurrent evaluations disagree")
		}
	}
}
