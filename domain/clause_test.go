package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestValidateClause(t *testing.T) {
	tests := []struct {
		name   string
		clause domain.Clause
		field  string // "" when valid
	}{
		{"equals", clause("country", domain.OpEquals, "de"), ""},
		{"equals a number", clause("age", domain.OpEquals, 42.0), ""},
		{"not_equals a boolean", clause("beta", domain.OpNotEquals, true), ""},
		{"in of mixed scalars", clause("plan", domain.OpIn, "pro", 3.0, false), ""},
		{"not_in", clause("plan", domain.OpNotIn, "free"), ""},
		{"contains", clause("email", domain.OpContains, "@acme."), ""},
		{"starts_with", clause("path", domain.OpStartsWith, "/admin", "/ops"), ""},
		{"ends_with", clause("email", domain.OpEndsWith, "@acme.com"), ""},
		{"matches", clause("email", domain.OpMatches, `^[a-z]+@acme\.com$`), ""},
		{"lt", clause("age", domain.OpLT, 18.0), ""},
		{"lte gt gte", clause("age", domain.OpGTE, -1.5, 1e300), ""},
		{"semver", clause("version", domain.OpSemverLT, "2.0.0", "v1.2", "1.0.0-rc.1+build"), ""},
		{"before an RFC 3339 date", clause("signup", domain.OpBefore, "2025-01-01T00:00:00Z"), ""},
		{"after Unix milliseconds", clause("signup", domain.OpAfter, 1735689600000.0), ""},
		{"exists", clause("email", domain.OpExists), ""},
		{"exists with nil values", domain.Clause{Attribute: "email", Operator: domain.OpExists}, ""},
		{"negated", domain.Clause{Attribute: "email", Operator: domain.OpEndsWith, Values: []any{"@x.com"}, Negate: true}, ""},
		{"in_segment", clause("", domain.OpInSegment, "beta", "vip"), ""},
		{"in_segment with an attribute", clause("key", domain.OpInSegment, "beta"), ""},
		{"attribute of 200 characters", clause(strings.Repeat("a", 200), domain.OpExists), ""},
		{"many values", clause("key", domain.OpIn, anys("u", domain.MaxClauseValues)...), ""},

		{"unknown operator", clause("a", "like", "x"), "op"},
		{"empty operator", clause("a", "", "x"), "op"},
		{"missing attribute", clause("", domain.OpEquals, "x"), "attribute"},
		{"blank attribute", clause(" ", domain.OpExists), "attribute"},
		{"attribute too long", clause(strings.Repeat("a", 201), domain.OpExists), "attribute"},
		{"blank attribute on in_segment", clause("\t", domain.OpInSegment, "beta"), "attribute"},
		{"equals without value", clause("a", domain.OpEquals), "values"},
		{"equals with two values", clause("a", domain.OpEquals, "x", "y"), "values"},
		{"not_equals with two values", clause("a", domain.OpNotEquals, "x", "y"), "values"},
		{"exists with a value", clause("a", domain.OpExists, true), "values"},
		{"in without values", clause("a", domain.OpIn), "values"},
		{"in_segment without values", clause("", domain.OpInSegment), "values"},
		{"too many values", clause("key", domain.OpIn, anys("u", domain.MaxClauseValues+1)...), "values"},
		{"null value", clause("a", domain.OpIn, "x", nil), "values[1]"},
		{"object value", clause("a", domain.OpEquals, map[string]any{}), "values[0]"},
		{"array value", clause("a", domain.OpIn, []any{"x"}), "values[0]"},
		{"int value (not as decoded from JSON)", clause("a", domain.OpEquals, 1), "values[0]"},
		{"NaN", clause("a", domain.OpIn, math.NaN()), "values[0]"},
		{"infinity", clause("a", domain.OpGT, math.Inf(-1)), "values[0]"},
		{"string value too long", clause("a", domain.OpIn, "x", strings.Repeat("é", 1001)), "values[1]"},
		{"invalid UTF-8", clause("a", domain.OpIn, "\xff"), "values[0]"},
		{"contains a number", clause("a", domain.OpContains, "x", 1.0), "values[1]"},
		{"starts_with a boolean", clause("a", domain.OpStartsWith, true), "values[0]"},
		{"ends_with a number", clause("a", domain.OpEndsWith, 2.0), "values[0]"},
		{"matches an invalid regexp", clause("a", domain.OpMatches, "ok", "(unclosed"), "values[1]"},
		{"matches a Perl-only regexp", clause("a", domain.OpMatches, `(?=lookahead)`), "values[0]"},
		{"matches a number", clause("a", domain.OpMatches, 1.0), "values[0]"},
		{"matches too long", clause("a", domain.OpMatches, strings.Repeat("a", 1001)), "values[0]"},
		{"lt a string", clause("a", domain.OpLT, "18"), "values[0]"},
		{"gte a boolean", clause("a", domain.OpGTE, 1.0, true), "values[1]"},
		{"semver invalid", clause("v", domain.OpSemverEq, "1.2.x"), "values[0]"},
		{"semver a number", clause("v", domain.OpSemverGT, 1.0), "values[0]"},
		{"before a word", clause("d", domain.OpBefore, "yesterday"), "values[0]"},
		{"before a date without time", clause("d", domain.OpBefore, "2025-01-01"), "values[0]"},
		{"after a boolean", clause("d", domain.OpAfter, true), "values[0]"},
		{"after a number out of range", clause("d", domain.OpAfter, 1e20), "values[0]"},
		{"in_segment unknown", clause("", domain.OpInSegment, "beta", "ghost"), "values[1]"},
		{"in_segment archived", clause("", domain.OpInSegment, "old"), "values[0]"},
		{"in_segment a number", clause("", domain.OpInSegment, 1.0), "values[0]"},
		{"in_segment an invalid key", clause("", domain.OpInSegment, "a b"), "values[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := domain.ValidateClause(tc.clause, catalog())
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			then(t, nil, err, nil, domain.EInvalid, tc.field)
		})
	}
	// A nil catalog knows no segment.
	then(t, nil, domain.ValidateClause(clause("", domain.OpInSegment, "beta"), nil), nil, domain.EInvalid, "values[0]")
}

func TestClauseSegments(t *testing.T) {
	got := domain.ClauseSegments([]domain.Clause{clause("", domain.OpInSegment, "b", "a"), clause("a", domain.OpIn, "c"),
		clause("", domain.OpInSegment, "a", "d")})
	if want := []string{"b", "a", "d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestValidateValueType(t *testing.T) {
	deep := any("leaf")
	for i := 0; i < 100; i++ {
		deep = []any{deep}
	}
	tests := []struct {
		typ  domain.FlagType
		v    any
		want bool
	}{
		{domain.FlagBoolean, true, true}, {domain.FlagBoolean, false, true}, {domain.FlagBoolean, "true", false}, {domain.FlagBoolean, nil, false},
		{domain.FlagString, "", true}, {domain.FlagString, "x", true}, {domain.FlagString, 1.0, false}, {domain.FlagString, "\xff", false},
		{domain.FlagNumber, 1.5, true}, {domain.FlagNumber, math.Copysign(0, -1), true}, {domain.FlagNumber, 1, false}, {domain.FlagNumber, math.NaN(), false},
		{domain.FlagNumber, math.Inf(1), false}, {domain.FlagNumber, "1", false},
		{domain.FlagJSON, map[string]any{"a": []any{nil, 1.0, "s", true, map[string]any{}}}, true}, {domain.FlagJSON, []any{}, true},
		{domain.FlagJSON, "s", true}, {domain.FlagJSON, 2.0, true}, {domain.FlagJSON, false, true},
		{domain.FlagJSON, nil, false}, {domain.FlagJSON, map[string]any{"a": math.NaN()}, false},
		{domain.FlagJSON, map[string]int{"a": 1}, false}, {domain.FlagJSON, struct{}{}, false}, {domain.FlagJSON, deep, false},
		{"integer", 1.0, false},
	}
	for _, tc := range tests {
		if got := domain.ValidateValueType(tc.typ, tc.v); got != tc.want {
			t.Errorf("ValidateValueType(%s, %#v) = %v, want %v", tc.typ, tc.v, got, tc.want)
		}
	}
}

// FuzzClause feeds arbitrary JSON to the clause decoder and validator: it must never panic, must
// only return EInvalid errors with a field, and a valid clause must survive a JSON round trip
// unchanged and still be valid.
func FuzzClause(f *testing.F) {
	for _, seed := range []string{
		`{"attribute":"country","op":"in","values":["de","fr"]}`,
		`{"attribute":"age","op":"gte","values":[18]}`,
		`{"attribute":"v","op":"semver_lt","values":["2.0.0-rc.1"]}`,
		`{"attribute":"d","op":"after","values":["2024-01-01T00:00:00Z",1700000000000]}`,
		`{"attribute":"e","op":"matches","values":["^a+$"],"negate":true}`,
		`{"attribute":"e","op":"exists","values":null}`,
		`{"op":"in_segment","values":["beta"]}`,
		`{"attribute":"a","op":"equals","values":[{"x":1}]}`,
		`{"attribute":"a","op":"nope","values":[]}`,
	} {
		f.Add([]byte(seed))
	}
	cat := catalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		var c domain.Clause
		if json.Unmarshal(data, &c) != nil {
			return
		}
		err := domain.ValidateClause(c, cat)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field == "" {
				t.Fatalf("want an EInvalid *Error with a field, got %#v", err)
			}
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("valid clause does not encode: %v", err)
		}
		var back domain.Clause
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("valid clause does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the clause\n  %#v\n  %#v", c, back)
		}
		if err := domain.ValidateClause(back, cat); err != nil {
			t.Fatalf("round trip made the clause invalid: %v", err)
		}
	})
}
