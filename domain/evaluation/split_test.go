package evaluation_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// bucketVectors pin the bucketing algorithm (BUCKETING.md lists them for other SDKs). They were
// computed independently from the specification (Python hashlib); if this test fails, the
// algorithm changed and every user would move: never update the numbers.
var bucketVectors = []struct {
	seed, salt, value string
	bucket            int
}{
	{"new-checkout", "3f2a9c", "user-123", 88388},
	{"new-checkout", "3f2a9c", "user-124", 3934},
	{"new-checkout", "", "user-123", 70220},
	{"exp-2024-q3", "3f2a9c", "user-123", 80507},
	{"flag.with.dots", "salt", "42", 25844},
	{"flag.with.dots", "salt", "-7", 83046},
	{"f", "s", "", 67629},
	{"checkout", "9b1de3a4c2", "ünïcødé-üser", 71410},
	{"new-checkout", "3f2a9c", "0", 20183},
	{strings.Repeat("a", 100), strings.Repeat("b", 40), strings.Repeat("c", 200), 61809}, // over the stack buffer
}

func TestBucketVectors(t *testing.T) {
	for _, v := range bucketVectors {
		if got := evaluation.Bucket(v.seed, v.salt, v.value); got != v.bucket {
			t.Errorf("Bucket(%.20q, %.20q, %.20q) = %d, want %d", v.seed, v.salt, v.value, got, v.bucket)
		}
	}
}

// splitFlag serves a split of variations a/b/c with the given weights by default.
func splitFlag(key, bucketBy string, wa, wb, wc int) *domain.FlagConfig {
	f := stringFlag(key)
	f.Salt = "3f2a9c"
	f.Targeting.Default = domain.Serve{Split: split(bucketBy, "a", wa, "b", wb, "c", wc)}
	return f
}

func TestSplitUsesBucket(t *testing.T) {
	// The evaluator's bucket for a targeting key is Bucket(flag key, salt, key), and the variation
	// is the one whose cumulative range holds it: [0,10000) a, [10000,30000) b, the rest c.
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{splitFlag("new-checkout", "", 10000, 20000, 70000)}))
	for i := 0; i < 2000; i++ {
		key := fmt.Sprintf("user-%d", i)
		res := c.Evaluate("new-checkout", &evaluation.Context{Key: key})
		b := evaluation.Bucket("new-checkout", "3f2a9c", key)
		want := "c"
		if b < 10000 {
			want = "a"
		} else if b < 30000 {
			want = "b"
		}
		if res.Bucket != b || res.Variation != want || res.Reason != evaluation.ReasonSplit {
			t.Fatalf("%s: %+v, want bucket %d variation %s", key, res, b, want)
		}
	}
	res := c.Evaluate("new-checkout", &evaluation.Context{Key: "user-123"})
	if res.Bucket != 88388 || res.Variation != "c" {
		t.Fatalf("test vector through Evaluate: %+v", res)
	}
}

func TestSplitDistribution(t *testing.T) {
	const users = 100000
	weights := []int{20000, 30000, 50000}
	c := mustCompileClean(t, ruleset([]*domain.FlagConfig{splitFlag("f", "", weights[0], weights[1], weights[2])}))
	counts := map[string]int{}
	buckets := make([]int, 100)
	for i := 0; i < users; i++ {
		res := c.Evaluate("f", &evaluation.Context{Key: fmt.Sprintf("user-%d", i)})
		counts[res.Variation]++
		buckets[res.Bucket*100/evaluation.BucketCount]++
	}
	for i, v := range []string{"a", "b", "c"} {
		share := float64(counts[v]) / users
		wantShare := float64(weights[i]) / evaluation.BucketCount
		if math.Abs(share-wantShare) > 0.01 {
			t.Errorf("variation %s: %.4f of users, want %.4f ± 0.01", v, share, wantShare)
		}
	}
	// Buckets are uniform: chi-square over 100 cells, 99 degrees of freedom, p = 0.001.
	chi := 0.0
	for _, n := range buckets {
		d := float64(n) - users/100
		chi += d * d / (users / 100)
	}
	if chi > 148.2 {
		t.Errorf("bucket distribution is not uniform: chi-square %.1f", chi)
	}
}

func TestSplitStableAcrossRecompiles(t *testing.T) {
	rs := ruleset([]*domain.FlagConfig{splitFlag("f", "", 33000, 33000, 34000)})
	c1 := mustCompileClean(t, rs)
	// A ruleset that went through JSON (as an SDK receives it) compiles to the same buckets.
	data, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var rs2 domain.Ruleset
	if err := json.Unmarshal(data, &rs2); err != nil {
		t.Fatal(err)
	}
	c2 := mustCompileClean(t, &rs2)
	for i := 0; i < 10000; i++ {
		ctx := &evaluation.Context{Key: fmt.Sprintf("user-%d", i)}
		r1, r2 := c1.Evaluate("f", ctx), c2.Evaluate("f", ctx)
		if r1 != r2 {
			t.Fatalf("recompiled result differs: %+v vs %+v", r1, r2)
		}
	}
}

func TestSplitWeightIncreaseKeepsUsers(t *testing.T) {
	at := func(pct int) *evaluation.Compiled {
		return mustCompileClean(t, ruleset([]*domain.FlagConfig{splitFlag("f", "", pct*1000, 0, 100000-pct*1000)}))
	}
	c10, c20 := at(10), at(20)
	inA10, inA20 := 0, 0
	for i := 0; i < 100000; i++ {
		ctx := &evaluation.Context{Key: fmt.Sprintf("user-%d", i)}
		r10, r20 := c10.Evaluate("f", ctx), c20.Evaluate("f", ctx)
		if r10.Variation == "a" {
			inA10++
			if r20.Variation != "a" {
				t.Fatalf("user-%d was in a at 10%% and left it at 20%%", i)
			}
		}
		if r20.Variation == "a" {
			inA20++
		}
	}
	if inA10 < 9000 || inA10 > 11000 || inA20 < 19000 || inA20 > 21000 {
		t.Fatalf("a holds %d users at 10%% and %d at 20%%", inA10, inA20)
	}
}

func TestSplitSeedAndSalt(t *testing.T) {
	base := splitFlag("f", "", 50000, 0, 50000)
	seeded := splitFlag("f", "", 50000, 0, 50000)
	seeded.Targeting.Default.Split.Seed = "exp-1"
	salted := splitFlag("f", "", 50000, 0, 50000)
	salted.Salt = "other"
	ctx := &evaluation.Context{Key: "user-123"}
	b := mustCompileClean(t, ruleset([]*domain.FlagConfig{base})).Evaluate("f", ctx).Bucket
	s := mustCompileClean(t, ruleset([]*domain.FlagConfig{seeded})).Evaluate("f", ctx).Bucket
	l := mustCompileClean(t, ruleset([]*domain.FlagConfig{salted})).Evaluate("f", ctx).Bucket
	if b != evaluation.Bucket("f", "3f2a9c", "user-123") || s != evaluation.Bucket("exp-1", "3f2a9c", "user-123") ||
		l != evaluation.Bucket("f", "other", "user-123") || b == s || b == l {
		t.Fatalf("buckets %d %d %d", b, s, l)
	}
	// Two flags sharing a seed and salt bucket a user identically (an experiment spanning flags).
	other := splitFlag("g", "", 50000, 0, 50000)
	other.Targeting.Default.Split.Seed = "exp-1"
	if g := mustCompileClean(t, ruleset([]*domain.FlagConfig{other})).Evaluate("g", ctx).Bucket; g != s {
		t.Fatalf("shared seed: %d vs %d", g, s)
	}
}

func TestSplitBucketBy(t *testing.T) {
	salt := "3f2a9c"
	tests := []struct {
		name     string
		bucketBy string
		key      string
		attrs    map[string]any
		bucket   int // -1: TARGETING_KEY_MISSING
	}{
		{"targeting key", "", "user-123", nil, evaluation.Bucket("f", salt, "user-123")},
		{"explicit key", "key", "user-123", nil, evaluation.Bucket("f", salt, "user-123")},
		{"missing targeting key", "", "", a("org", "acme"), -1},
		{"missing targeting key, explicit", "key", "", nil, -1},
		{"string attribute", "org", "u", a("org", "acme"), evaluation.Bucket("f", salt, "acme")},
		{"integer attribute", "org", "u", a("org", 42.0), evaluation.Bucket("f", salt, "42")},
		{"negative integer", "org", "u", a("org", -7.0), evaluation.Bucket("f", salt, "-7")},
		{"Go int", "org", "u", a("org", 42), evaluation.Bucket("f", salt, "42")},
		{"json.Number", "org", "u", a("org", json.Number("42")), evaluation.Bucket("f", salt, "42")},
		{"2^53", "org", "u", a("org", 9007199254740992.0), evaluation.Bucket("f", salt, "9007199254740992")},
		{"above 2^53", "org", "u", a("org", 9007199254740994.0), -1},
		{"fraction", "org", "u", a("org", 4.5), -1},
		{"bool", "org", "u", a("org", true), -1},
		{"empty string", "org", "u", a("org", ""), -1},
		{"null", "org", "u", a("org", nil), -1},
		{"array", "org", "u", a("org", []any{"acme"}), -1},
		{"missing attribute", "org", "u", nil, -1},
		{"nested attribute", "company/id", "u", a("company", map[string]any{"id": "acme"}), evaluation.Bucket("f", salt, "acme")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := splitFlag("f", tc.bucketBy, 50000, 25000, 25000)
			f.Targeting.Rules = []domain.Rule{{ID: "r", Clauses: []domain.Clause{cl("plan", domain.OpEquals, "pro")},
				Serve: domain.Serve{Split: split(tc.bucketBy, "a", 50000, "b", 50000)}}}
			c := mustCompileClean(t, ruleset([]*domain.FlagConfig{f}))
			attrs := map[string]any{}
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			for _, ruleMatches := range []bool{false, true} {
				if ruleMatches {
					attrs["plan"] = "pro"
				}
				res := c.Evaluate("f", &evaluation.Context{Key: tc.key, Attributes: attrs})
				rule := -1
				if ruleMatches {
					rule = 0
				}
				if tc.bucket < 0 {
					check(t, res, want{"", evaluation.ReasonError, evaluation.ErrorTargetingKeyMissing, rule})
					continue
				}
				if res.Reason != evaluation.ReasonSplit || res.Bucket != tc.bucket || res.RuleIndex != rule {
					t.Fatalf("got %+v, want bucket %d rule %d", res, tc.bucket, rule)
				}
			}
		})
	}
}
