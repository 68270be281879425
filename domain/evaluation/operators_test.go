package evaluation_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// matchCase evaluates one clause against one context: does a rule holding only that clause match?
type matchCase struct {
	name   string
	clause domain.Clause
	key    string
	attrs  map[string]any
	want   bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := boolFlag("f")
			f.Targeting.Rules = []domain.Rule{rule("r", "on", tc.clause)}
			c := mustCompileClean(t, ruleset([]*domain.FlagConfig{f}))
			res := c.Evaluate("f", &evaluation.Context{Key: tc.key, Attributes: tc.attrs})
			if res.IsError() {
				t.Fatalf("error result: %+v", res)
			}
			if got := res.Variation == "on"; got != tc.want {
				t.Fatalf("clause %+v on key %q attrs %v: matched %v, want %v (result %+v)", tc.clause, tc.key, tc.attrs, got, tc.want, res)
			}
			// Negate inverts every result, including missing and wrong-typed attributes.
			f.Targeting.Rules[0].Clauses[0].Negate = !tc.clause.Negate
			c = mustCompileClean(t, ruleset([]*domain.FlagConfig{f}))
			res = c.Evaluate("f", &evaluation.Context{Key: tc.key, Attributes: tc.attrs})
			if got := res.Variation == "on"; got != !tc.want {
				t.Fatalf("negated: matched %v, want %v", got, !tc.want)
			}
		})
	}
}

func a(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestEqualityOperators(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"equals string", cl("plan", domain.OpEquals, "pro"), "", a("plan", "pro"), true},
		{"equals other string", cl("plan", domain.OpEquals, "pro"), "", a("plan", "free"), false},
		{"equals is case-sensitive", cl("plan", domain.OpEquals, "pro"), "", a("plan", "Pro"), false},
		{"equals number", cl("age", domain.OpEquals, 30.0), "", a("age", 30.0), true},
		{"equals Go int", cl("age", domain.OpEquals, 30.0), "", a("age", 30), true},
		{"equals int64", cl("age", domain.OpEquals, 30.0), "", a("age", int64(30)), true},
		{"equals json.Number", cl("age", domain.OpEquals, 30.0), "", a("age", json.Number("30")), true},
		{"equals bool", cl("beta", domain.OpEquals, true), "", a("beta", true), true},
		{"equals false", cl("beta", domain.OpEquals, false), "", a("beta", false), true},
		{"equals bool mismatch", cl("beta", domain.OpEquals, true), "", a("beta", false), false},
		{"string 1 is not number 1", cl("n", domain.OpEquals, "1"), "", a("n", 1.0), false},
		{"number 1 is not string 1", cl("n", domain.OpEquals, 1.0), "", a("n", "1"), false},
		{"string true is not bool", cl("b", domain.OpEquals, true), "", a("b", "true"), false},
		{"equals missing", cl("plan", domain.OpEquals, "pro"), "", nil, false},
		{"equals null", cl("plan", domain.OpEquals, "pro"), "", a("plan", nil), false},
		{"equals object", cl("plan", domain.OpEquals, "pro"), "", a("plan", map[string]any{"x": "pro"}), false},
		{"equals array any element", cl("tags", domain.OpEquals, "b"), "", a("tags", []any{"a", "b"}), true},
		{"equals []string element", cl("tags", domain.OpEquals, "b"), "", a("tags", []string{"a", "b"}), true},
		{"equals array no element", cl("tags", domain.OpEquals, "c"), "", a("tags", []any{"a", "b"}), false},
		{"equals nested array never", cl("tags", domain.OpEquals, "a"), "", a("tags", []any{[]any{"a"}}), false},
		{"equals empty array", cl("tags", domain.OpEquals, "a"), "", a("tags", []any{}), false},
		{"equals key", cl("key", domain.OpEquals, "u1"), "u1", nil, true},
		{"equals empty key is missing", cl("key", domain.OpEquals, ""), "", nil, false},
		{"key attribute is the targeting key, not an attribute", cl("key", domain.OpEquals, "x"), "u1", a("key", "x"), false},

		{"not_equals other", cl("plan", domain.OpNotEquals, "pro"), "", a("plan", "free"), true},
		{"not_equals same", cl("plan", domain.OpNotEquals, "pro"), "", a("plan", "pro"), false},
		{"not_equals missing matches", cl("plan", domain.OpNotEquals, "pro"), "", nil, true},
		{"not_equals null matches", cl("plan", domain.OpNotEquals, "pro"), "", a("plan", nil), true},
		{"not_equals wrong type matches", cl("n", domain.OpNotEquals, "1"), "", a("n", 1.0), true},
		{"not_equals array containing", cl("tags", domain.OpNotEquals, "b"), "", a("tags", []any{"a", "b"}), false},
		{"not_equals array not containing", cl("tags", domain.OpNotEquals, "c"), "", a("tags", []any{"a", "b"}), true},

		{"in", cl("country", domain.OpIn, "NL", "BE"), "", a("country", "BE"), true},
		{"in not", cl("country", domain.OpIn, "NL", "BE"), "", a("country", "DE"), false},
		{"in mixed types", cl("v", domain.OpIn, "x", 2.0, true), "", a("v", 2.0), true},
		{"in mixed bool", cl("v", domain.OpIn, "x", 2.0, true), "", a("v", true), true},
		{"in mixed strict", cl("v", domain.OpIn, "x", 2.0, true), "", a("v", "2"), false},
		{"in missing", cl("country", domain.OpIn, "NL"), "", nil, false},
		{"in array", cl("roles", domain.OpIn, "admin", "owner"), "", a("roles", []any{"viewer", "owner"}), true},
		{"in key", cl("key", domain.OpIn, "u1", "u2"), "u2", nil, true},
		{"not_in", cl("country", domain.OpNotIn, "NL", "BE"), "", a("country", "DE"), true},
		{"not_in listed", cl("country", domain.OpNotIn, "NL", "BE"), "", a("country", "NL"), false},
		{"not_in missing matches", cl("country", domain.OpNotIn, "NL"), "", nil, true},
		{"not_in array with listed element", cl("roles", domain.OpNotIn, "admin"), "", a("roles", []any{"viewer", "admin"}), false},
		{"not_in array without", cl("roles", domain.OpNotIn, "admin"), "", a("roles", []any{"viewer"}), true},
		{"not_in empty array", cl("roles", domain.OpNotIn, "admin"), "", a("roles", []any{}), true},
		{"not_in key", cl("key", domain.OpNotIn, "u1"), "u2", nil, true},
		{"not_in empty key", cl("key", domain.OpNotIn, "u1"), "", nil, true},
	})
}

func TestLongInLists(t *testing.T) {
	var strs, nums []any
	for i := 0; i < 100; i++ {
		strs = append(strs, fmt.Sprintf("user-%d", i))
		nums = append(nums, float64(i))
	}
	runMatchCases(t, []matchCase{
		{"string set hit", cl("id", domain.OpIn, strs...), "", a("id", "user-57"), true},
		{"string set miss", cl("id", domain.OpIn, strs...), "", a("id", "user-570"), false},
		{"string set number", cl("id", domain.OpIn, strs...), "", a("id", 57.0), false},
		{"number set hit", cl("n", domain.OpIn, nums...), "", a("n", 57.0), true},
		{"number set int", cl("n", domain.OpIn, nums...), "", a("n", uint8(57)), true},
		{"number set miss", cl("n", domain.OpIn, nums...), "", a("n", 57.5), false},
		{"number set string", cl("n", domain.OpIn, nums...), "", a("n", "57"), false},
		{"not_in string set", cl("id", domain.OpNotIn, strs...), "", a("id", "user-57"), false},
		{"key in set", cl("key", domain.OpIn, strs...), "user-3", nil, true},
		{"array in set", cl("ids", domain.OpIn, strs...), "", a("ids", []string{"x", "user-99"}), true},
	})
}

func TestStringOperators(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"contains", cl("email", domain.OpContains, "@acme."), "", a("email", "bob@acme.io"), true},
		{"contains any", cl("email", domain.OpContains, "@x.", "@acme."), "", a("email", "bob@acme.io"), true},
		{"contains not", cl("email", domain.OpContains, "@x."), "", a("email", "bob@acme.io"), false},
		{"contains number attr", cl("n", domain.OpContains, "1"), "", a("n", 1.0), false},
		{"contains bool attr", cl("n", domain.OpContains, "true"), "", a("n", true), false},
		{"contains missing", cl("email", domain.OpContains, "@"), "", nil, false},
		{"contains array", cl("emails", domain.OpContains, "@acme."), "", a("emails", []any{1.0, "a@acme.io"}), true},
		{"starts_with", cl("email", domain.OpStartsWith, "bob"), "", a("email", "bob@acme.io"), true},
		{"starts_with not", cl("email", domain.OpStartsWith, "acme"), "", a("email", "bob@acme.io"), false},
		{"starts_with key", cl("key", domain.OpStartsWith, "user-"), "user-1", nil, true},
		{"ends_with", cl("email", domain.OpEndsWith, ".io", ".com"), "", a("email", "bob@acme.io"), true},
		{"ends_with not", cl("email", domain.OpEndsWith, ".com"), "", a("email", "bob@acme.io"), false},
		{"matches", cl("email", domain.OpMatches, `^[a-z]+@acme\.(io|com)$`), "", a("email", "bob@acme.io"), true},
		{"matches unanchored", cl("email", domain.OpMatches, `acme`), "", a("email", "bob@acme.io"), true},
		{"matches any", cl("email", domain.OpMatches, `^x`, `io$`), "", a("email", "bob@acme.io"), true},
		{"matches not", cl("email", domain.OpMatches, `^[0-9]+$`), "", a("email", "bob@acme.io"), false},
		{"matches number attr", cl("n", domain.OpMatches, `^[0-9]+$`), "", a("n", 12.0), false},
		{"matches missing", cl("email", domain.OpMatches, `.*`), "", nil, false},
		{"matches empty string", cl("email", domain.OpMatches, `.*`), "", a("email", ""), true},
	})
}

func TestNumberOperators(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"lt", cl("age", domain.OpLT, 18.0), "", a("age", 17.0), true},
		{"lt equal", cl("age", domain.OpLT, 18.0), "", a("age", 18.0), false},
		{"lt any is lt max", cl("age", domain.OpLT, 10.0, 20.0), "", a("age", 15.0), true},
		{"lte equal", cl("age", domain.OpLTE, 18.0), "", a("age", 18.0), true},
		{"lte above", cl("age", domain.OpLTE, 18.0), "", a("age", 18.5), false},
		{"gt", cl("age", domain.OpGT, 18.0), "", a("age", 19.0), true},
		{"gt equal", cl("age", domain.OpGT, 18.0), "", a("age", 18.0), false},
		{"gt any is gt min", cl("age", domain.OpGT, 30.0, 10.0), "", a("age", 15.0), true},
		{"gte equal", cl("age", domain.OpGTE, 18.0), "", a("age", 18.0), true},
		{"gte below", cl("age", domain.OpGTE, 18.0), "", a("age", -3.0), false},
		{"gt Go int", cl("age", domain.OpGT, 18.0), "", a("age", 40), true},
		{"gt float32", cl("age", domain.OpGT, 18.0), "", a("age", float32(18.5)), true},
		{"gt uint64", cl("age", domain.OpGT, 18.0), "", a("age", uint64(19)), true},
		{"gt json.Number", cl("age", domain.OpGT, 18.0), "", a("age", json.Number("19")), true},
		{"gt bad json.Number", cl("age", domain.OpGT, 18.0), "", a("age", json.Number("x")), false},
		{"numeric string is not a number", cl("age", domain.OpGT, 18.0), "", a("age", "40"), false},
		{"bool is not a number", cl("age", domain.OpGT, 0.0), "", a("age", true), false},
		{"lt missing", cl("age", domain.OpLT, 18.0), "", nil, false},
		{"lt array any", cl("ages", domain.OpLT, 18.0), "", a("ages", []any{30.0, 12.0}), true},
		{"lt array none", cl("ages", domain.OpLT, 18.0), "", a("ages", []any{30.0, "12"}), false},
		{"lt object", cl("age", domain.OpLT, 18.0), "", a("age", map[string]any{}), false},
	})
}

func TestSemverOperators(t *testing.T) {
	runMatchCases(t, []matchCase{
		{"eq", cl("v", domain.OpSemverEq, "2.0.0"), "", a("v", "2.0.0"), true},
		{"eq v prefix and partial", cl("v", domain.OpSemverEq, "2.0.0"), "", a("v", "v2"), true},
		{"eq build ignored", cl("v", domain.OpSemverEq, "2.0.0"), "", a("v", "2.0.0+build.7"), true},
		{"eq any", cl("v", domain.OpSemverEq, "1.0.0", "2.0.0"), "", a("v", "2.0"), true},
		{"eq not prerelease", cl("v", domain.OpSemverEq, "2.0.0"), "", a("v", "2.0.0-rc.1"), false},
		{"lt", cl("v", domain.OpSemverLT, "2.0.0"), "", a("v", "1.10.3"), true},
		{"lt numeric not lexical", cl("v", domain.OpSemverLT, "1.10.0"), "", a("v", "1.9.0"), true},
		{"lt prerelease below release", cl("v", domain.OpSemverLT, "2.0.0"), "", a("v", "2.0.0-rc.1"), true},
		{"lt prerelease order", cl("v", domain.OpSemverLT, "2.0.0-rc.10"), "", a("v", "2.0.0-rc.9"), true},
		{"lt alpha below beta", cl("v", domain.OpSemverLT, "1.0.0-beta"), "", a("v", "1.0.0-alpha.1"), true},
		{"lt shorter prerelease lower", cl("v", domain.OpSemverLT, "1.0.0-alpha.1"), "", a("v", "1.0.0-alpha"), true},
		{"lt numeric id below alpha", cl("v", domain.OpSemverLT, "1.0.0-alpha"), "", a("v", "1.0.0-1"), true},
		{"lt equal", cl("v", domain.OpSemverLT, "2.0.0"), "", a("v", "2.0.0"), false},
		{"lt any is lt max", cl("v", domain.OpSemverLT, "1.0.0", "3.0.0"), "", a("v", "2.5.0"), true},
		{"gt", cl("v", domain.OpSemverGT, "2.0.0"), "", a("v", "2.0.1"), true},
		{"gt any is gt min", cl("v", domain.OpSemverGT, "3.0.0", "1.0.0"), "", a("v", "2.0.0"), true},
		{"gt release above prerelease", cl("v", domain.OpSemverGT, "2.0.0-rc.1"), "", a("v", "2.0.0"), true},
		{"gt huge numbers", cl("v", domain.OpSemverGT, "1.0.0-99999999999999999999"), "", a("v", "1.0.0-100000000000000000000"), true},
		{"invalid attribute", cl("v", domain.OpSemverGT, "1.0.0"), "", a("v", "2.0.x"), false},
		{"leading zero attribute", cl("v", domain.OpSemverGT, "1.0.0"), "", a("v", "02.0.0"), false},
		{"four numbers", cl("v", domain.OpSemverGT, "1.0.0"), "", a("v", "2.0.0.0"), false},
		{"number attribute", cl("v", domain.OpSemverGT, "1.0.0"), "", a("v", 2.0), false},
		{"missing", cl("v", domain.OpSemverLT, "1.0.0"), "", nil, false},
		{"array", cl("v", domain.OpSemverLT, "1.0.0"), "", a("v", []any{"bad", "0.9.0"}), true},
	})
}

func TestDateOperators(t *testing.T) {
	const jan2024 = 1704067200000.0 // 2024-01-01T00:00:00Z in Unix milliseconds
	runMatchCases(t, []matchCase{
		{"before rfc3339", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2023-12-31T23:59:59Z"), true},
		{"before equal", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2024-01-01T00:00:00Z"), false},
		{"before offset", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2024-01-01T00:30:00+01:00"), true},
		{"before fraction", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2023-12-31T23:59:59.999999999Z"), true},
		{"before long fraction (time.Parse path)", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2023-12-31T23:59:59.9999999999Z"), true},
		{"before comma fraction (time.Parse path)", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", "2023-12-31T23:59:59,5Z"), true},
		{"before millis attr", cl("d", domain.OpBefore, "2024-01-01T00:00:00Z"), "", a("d", jan2024-1), true},
		{"before millis value", cl("d", domain.OpBefore, jan2024), "", a("d", "2023-06-01T00:00:00Z"), true},
		{"before Go int millis", cl("d", domain.OpBefore, jan2024), "", a("d", int64(jan2024-1)), true},
		{"before any is before latest", cl("d", domain.OpBefore, "2020-01-01T00:00:00Z", "2025-01-01T00:00:00Z"), "", a("d", "2024-06-01T00:00:00Z"), true},
		{"after", cl("d", domain.OpAfter, "2024-01-01T00:00:00Z"), "", a("d", "2024-01-01T00:00:01Z"), true},
		{"after equal millis", cl("d", domain.OpAfter, "2024-01-01T00:00:00Z"), "", a("d", jan2024), false},
		{"after negative offset", cl("d", domain.OpAfter, "2024-01-01T00:00:00Z"), "", a("d", "2023-12-31T23:30:00-01:00"), true},
		{"after any is after earliest", cl("d", domain.OpAfter, "2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z"), "", a("d", "2024-01-01T00:00:00Z"), true},
		{"after leap day", cl("d", domain.OpAfter, "2024-02-28T00:00:00Z"), "", a("d", "2024-02-29T00:00:00Z"), true},
		{"invalid day", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", a("d", "2023-02-29T00:00:00Z"), false},
		{"date without time", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", a("d", "2024-01-01"), false},
		{"garbage", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", a("d", "yesterday"), false},
		{"bool", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", a("d", true), false},
		{"missing", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", nil, false},
		{"array", cl("d", domain.OpAfter, "2020-01-01T00:00:00Z"), "", a("d", []any{"x", "2021-01-01T00:00:00Z"}), true},
	})
}

func TestExistsAndPaths(t *testing.T) {
	addr := map[string]any{"city": "Utrecht", "zip": nil}
	runMatchCases(t, []matchCase{
		{"exists", cl("plan", domain.OpExists), "", a("plan", "pro"), true},
		{"exists empty string", cl("plan", domain.OpExists), "", a("plan", ""), true},
		{"exists false", cl("beta", domain.OpExists), "", a("beta", false), true},
		{"exists empty array", cl("tags", domain.OpExists), "", a("tags", []any{}), true},
		{"exists object", cl("address", domain.OpExists), "", a("address", addr), true},
		{"exists null", cl("plan", domain.OpExists), "", a("plan", nil), false},
		{"exists missing", cl("plan", domain.OpExists), "", nil, false},
		{"exists key", cl("key", domain.OpExists), "u1", nil, true},
		{"exists no key", cl("key", domain.OpExists), "", nil, false},
		{"path", cl("address/city", domain.OpEquals, "Utrecht"), "", a("address", addr), true},
		{"path leading slash", cl("/address/city", domain.OpEquals, "Utrecht"), "", a("address", addr), true},
		{"path null leaf", cl("address/zip", domain.OpExists), "", a("address", addr), false},
		{"path missing leaf", cl("address/street", domain.OpExists), "", a("address", addr), false},
		{"path through a string", cl("address/city/x", domain.OpExists), "", a("address", addr), false},
		{"path through missing", cl("nope/city", domain.OpExists), "", a("address", addr), false},
		{"path array index", cl("devices/1/os", domain.OpEquals, "ios"), "", a("devices", []any{map[string]any{"os": "android"}, map[string]any{"os": "ios"}}), true},
		{"path array out of range", cl("devices/2/os", domain.OpExists), "", a("devices", []any{map[string]any{"os": "android"}}), false},
		{"path array bad index", cl("devices/01/os", domain.OpExists), "", a("devices", []any{1.0, map[string]any{"os": "ios"}}), false},
		{"path into array value", cl("user/roles", domain.OpIn, "admin"), "", a("user", map[string]any{"roles": []any{"admin"}}), true},
		{"escaped slash", cl("a~1b", domain.OpEquals, "x"), "", a("a/b", "x"), true},
		{"escaped tilde", cl("m/a~0b", domain.OpEquals, "x"), "", a("m", map[string]any{"a~b": "x"}), true},
		{"path not_equals missing", cl("address/country", domain.OpNotEquals, "NL"), "", a("address", addr), true},
	})
}
