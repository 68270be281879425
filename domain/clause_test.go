package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

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
		{domain.FlagNumber, 1.5, true}, {domain.FlagNumber, -0.0, true}, {domain.FlagNumber, 1, false}, {domain.FlagNumber, math.NaN(), false},
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

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   any
		want time.Time // zero: not a date
	}{
		{"2025-01-02T03:04:05Z", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2025-01-02T03:04:05.25+02:00", time.Date(2025, 1, 2, 1, 4, 5, 250e6, time.UTC)},
		{1735689600000.0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{1735689600000.5, time.Date(2025, 1, 1, 0, 0, 0, 500e3, time.UTC)},
		{-1000.0, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)},
		{int64(1000), time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{1000, time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{json.Number("1000"), time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{"2025-01-02", time.Time{}},
		{"2025-13-02T03:04:05Z", time.Time{}},
		{"next tuesday", time.Time{}},
		{"", time.Time{}},
		{math.NaN(), time.Time{}},
		{math.Inf(1), time.Time{}},
		{1e20, time.Time{}},
		{true, time.Time{}},
		{nil, time.Time{}},
		{json.Number("x"), time.Time{}},
	}
	for _, tc := range tests {
		got, ok := domain.ParseDate(tc.in)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("ParseDate(%#v) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
		if ok && got.Location() != time.UTC {
			t.Errorf("ParseDate(%#v) not in UTC", tc.in)
		}
	}
}

func TestParseSemver(t *testing.T) {
	valid := map[string]string{ // input -> canonical form
		"1.2.3":                    "1.2.3",
		"v1.2.3":                   "1.2.3",
		"V0.0.0":                   "0.0.0",
		"1.2":                      "1.2.0",
		"1":                        "1.0.0",
		"1.0.0-rc.1":               "1.0.0-rc.1",
		"1.0.0-0.3.7":              "1.0.0-0.3.7",
		"1.0.0-x-y-z.--":           "1.0.0-x-y-z.--",
		"1.0.0+20130313144700":     "1.0.0+20130313144700",
		"1.0.0-beta+exp.sha.5114":  "1.0.0-beta+exp.sha.5114",
		"1.0.0+001":                "1.0.0+001", // leading zeros are fine in build metadata
		"1.2-rc.1":                 "1.2.0-rc.1",
		"18446744073709551615.0.0": "18446744073709551615.0.0",
	}
	for in, want := range valid {
		v, err := domain.ParseSemver(in)
		if err != nil {
			t.Errorf("ParseSemver(%q): %v", in, err)
			continue
		}
		if v.String() != want {
			t.Errorf("ParseSemver(%q) = %s, want %s", in, v, want)
		}
	}
	for _, in := range []string{"", "v", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+", "1.2.3-01",
		"1.2.3-rc..1", "1.2.3-rc_1", "1.2.3+a+b", "a.b.c", "1.2.x", " 1.2.3", "1.2.3 ", "1..3", "1.2.", "-1.2.3",
		"vv1.2.3", "18446744073709551616.0.0", "1.2.3-é", strings.Repeat("1", 257)} {
		if v, err := domain.ParseSemver(in); err == nil {
			t.Errorf("ParseSemver(%q) = %s, want an error", in, v)
		}
	}
}

func TestSemverCompare(t *testing.T) {
	// Each version is lower than the next (semver.org, item 11, plus numeric edge cases).
	ordered := []string{"0.0.1", "0.1.0", "0.9.0", "0.10.0", "1.0.0-0", "1.0.0-1", "1.0.0-2", "1.0.0-10",
		"1.0.0-99999999999999999999", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "2.0.0", "2.1.0", "2.1.1", "10.0.0"}
	vs := make([]domain.Semver, len(ordered))
	for i, s := range ordered {
		v, err := domain.ParseSemver(s)
		if err != nil {
			t.Fatal(err)
		}
		vs[i] = v
	}
	for i := range vs {
		for j := range vs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	equal := [][2]string{{"1.2", "1.2.0"}, {"v1", "1.0.0"}, {"1.0.0+a", "1.0.0+b"}, {"1.0.0-rc.1+x", "v1.0.0-rc.1"}}
	for _, p := range equal {
		a, _ := domain.ParseSemver(p[0])
		b, _ := domain.ParseSemver(p[1])
		if a.Compare(b) != 0 {
			t.Errorf("%s and %s should be equal", p[0], p[1])
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

// FuzzParseSemver: no panic; a parsed version's canonical form parses back to an equal version;
// Compare is reflexive and antisymmetric.
func FuzzParseSemver(f *testing.F) {
	for _, s := range [][2]string{{"1.2.3", "1.2.4"}, {"v1.0.0-rc.1+b", "1.0.0"}, {"1.2", "1.2.0-0"},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta"}, {"0.0.0-0", "99999999999999999999.0.0"}, {"1.0.0+01", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := domain.ParseSemver(a)
		vb, errB := domain.ParseSemver(b)
		if errA == nil {
			back, err := domain.ParseSemver(va.String())
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", va.String(), a, err)
			}
			if !reflect.DeepEqual(back, va) || back.String() != va.String() {
				t.Fatalf("canonical form of %q changes it: %#v vs %#v", a, va, back)
			}
			if va.Compare(va) != 0 {
				t.Fatalf("%q is not equal to itself", a)
			}
		}
		if errA == nil && errB == nil && va.Compare(vb) != -vb.Compare(va) {
			t.Fatalf("Compare is not antisymmetric on %q and %q", a, b)
		}
	})
}
