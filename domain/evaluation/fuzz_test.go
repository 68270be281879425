package evaluation_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// fuzzContext is the JSON shape of a fuzzed context.
type fuzzContext struct {
	Key        string         `json:"key"`
	Attributes map[string]any `json:"attributes"`
}

func fuzzSeeds(f *testing.F) {
	rulesets := []*domain.Ruleset{
		ruleset([]*domain.FlagConfig{benchFlag("bench")}),
		ruleset([]*domain.FlagConfig{
			requires(requires(stringFlag("f"), "g", "on"), "h", "off"),
			requires(boolFlag("g"), "f", "a"),
			func() *domain.FlagConfig {
				h := boolFlag("h")
				h.Targeting.Targets = []domain.Target{{Variation: "on", Values: []string{"u1"}}}
				h.Targeting.Rules = []domain.Rule{rule("seg", "on", inSeg("s1")), rule("neg", "off", neg(inSeg("s2", "nope")))}
				h.Targeting.Default = domain.Serve{Split: split("org/id", "on", 30000, "off", 70000)}
				return h
			}(),
		},
			seg("s1", domain.MatchAny, []string{"u2"}, []string{"u3"}, inSeg("s2"), cl("plan", domain.OpIn, "pro", 1.0, true)),
			seg("s2", domain.MatchAll, nil, nil, inSeg("s1"), cl("v", domain.OpSemverGT, "1.0.0")),
			seg("s3", domain.MatchAll, nil, nil, cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"))),
		ruleset(chain(evaluation.MaxPrerequisiteDepth + 1)),
	}
	contexts := []string{
		`{"key":"u1","attributes":{"plan":"pro","country":"NL","age":34,"tags":["a",1,null,{"x":1}],"org":{"id":42}}}`,
		`{"key":"","attributes":{"v":"2.0.0-rc.1","d":"2023-06-01T00:00:00Z","email":"a@corp.example.com"}}`,
		`{"key":"user-123","attributes":null}`,
		`{}`,
	}
	for i, rs := range rulesets {
		data, err := json.Marshal(rs)
		if err != nil {
			f.Fatal(err)
		}
		for _, ctx := range contexts[i%2:] {
			f.Add(data, []byte(ctx))
		}
	}
	f.Add([]byte(`{"flags":{"x":{"variations":[{"key":"a","value":1}],"type":"number","targeting":{"on":true,"default":{"variation":"a"},"rules":[{"clauses":[{"attribute":"a/0/b","op":"matches","values":["^x+$"]}],"serve":{"split":{"variations":[{"variation":"a","weight":100000}]}}}]}}}}`),
		[]byte(`{"key":"k","attributes":{"a":[{"b":"xxx"}]}}`))
	f.Add([]byte(`{"flags":{"x":null,"y":{}},"segments":{"s":null}}`), []byte(`{"attributes":{"key":5}}`))
}

// FuzzEvaluate compiles arbitrary rulesets and evaluates every flag for arbitrary contexts: it
// must never panic, never loop, and always return a well-formed, deterministic result.
func FuzzEvaluate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, rsJSON, ctxJSON []byte) {
		var rs domain.Ruleset
		if json.Unmarshal(rsJSON, &rs) != nil {
			return
		}
		var fc fuzzContext
		if json.Unmarshal(ctxJSON, &fc) != nil {
			return
		}
		// A loop would stall the fuzzer rather than fail it: crash instead, so the input is kept.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("evaluation of %q with %q takes over 10s", rsJSON, ctxJSON)) })
		defer watchdog.Stop()

		c, err := evaluation.Compile(&rs)
		if err != nil {
			return
		}
		checkEvaluations(t, c, &evaluation.Context{Key: fc.Key, Attributes: fc.Attributes})
		if _, err := evaluation.Compile(&rs); err != nil {
			t.Fatalf("second compile failed: %v", err)
		}
	})
}

var validReasons = map[string]bool{evaluation.ReasonDisabled: true, evaluation.ReasonTargetingMatch: true,
	evaluation.ReasonSplit: true, evaluation.ReasonDefault: true, evaluation.ReasonError: true,
	evaluation.ReasonPrerequisiteFailed: true}

// checkEvaluations evaluates every flag of c (and two missing ones) for ctx and checks that each
// result is well-formed, deterministic and equal to what EvaluateAll returns.
func checkEvaluations(t *testing.T, c *evaluation.Compiled, ctx *evaluation.Context) {
	t.Helper()
	keys := append(c.Flags(), "", "no-such-flag")
	all := c.EvaluateAll(ctx, nil)
	if len(all) != len(keys)-2 {
		t.Fatalf("EvaluateAll returned %d results for %d flags", len(all), len(keys)-2)
	}
	for i, key := range keys {
		r := c.Evaluate(key, ctx)
		if r.FlagKey != key || !validReasons[r.Reason] || (r.Reason == evaluation.ReasonError) != (r.ErrorCode != "") {
			t.Fatalf("malformed result %+v", r)
		}
		if (r.Reason == evaluation.ReasonSplit) != (r.Bucket >= 0) || r.Bucket >= evaluation.BucketCount {
			t.Fatalf("bucket %d with reason %s", r.Bucket, r.Reason)
		}
		if cfg, ok := c.Flag(key); ok {
			if r.VariationIndex >= len(cfg.Variations) || (r.VariationIndex >= 0 && cfg.Variations[r.VariationIndex].Key != r.Variation) {
				t.Fatalf("variation %d %q out of %d", r.VariationIndex, r.Variation, len(cfg.Variations))
			}
			if r.RuleIndex >= len(cfg.Targeting.Rules) {
				t.Fatalf("rule %d out of %d", r.RuleIndex, len(cfg.Targeting.Rules))
			}
		} else if r.ErrorCode != evaluation.ErrorFlagNotFound {
			t.Fatalf("missing flag: %+v", r)
		}
		again := c.Evaluate(key, ctx)
		if !sameResult(r, again) {
			t.Fatalf("not deterministic: %+v then %+v", r, again)
		}
		if i < len(all) && !sameResult(r, all[i]) {
			t.Fatalf("Evaluate %+v differs from EvaluateAll %+v", r, all[i])
		}
		_ = r.WithType(domain.FlagBoolean)
	}
}

// sameResult compares results except Value, which may be an incomparable JSON object; the
// variation index identifies it.
func sameResult(a, b evaluation.Result) bool {
	a.Value, b.Value = nil, nil
	return a == b
}
