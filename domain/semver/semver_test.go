package semver_test

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain/semver"
)

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
		v, err := semver.Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if v.String() != want {
			t.Errorf("Parse(%q) = %s, want %s", in, v, want)
		}
	}
	for _, in := range []string{"", "v", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+", "1.2.3-01",
		"1.2.3-rc..1", "1.2.3-rc_1", "1.2.3+a+b", "a.b.c", "1.2.x", " 1.2.3", "1.2.3 ", "1..3", "1.2.", "-1.2.3",
		"vv1.2.3", "18446744073709551616.0.0", "1.2.3-é", strings.Repeat("1", 257)} {
		if v, err := semver.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %s, want an error", in, v)
		}
	}
}

func TestSemverCompare(t *testing.T) {
	// Each version is lower than the next (semver.org, item 11, plus numeric edge cases).
	ordered := []string{"0.0.1", "0.1.0", "0.9.0", "0.10.0", "1.0.0-0", "1.0.0-1", "1.0.0-2", "1.0.0-10",
		"1.0.0-99999999999999999999", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "2.0.0", "2.1.0", "2.1.1", "10.0.0"}
	vs := make([]semver.Version, len(ordered))
	for i, s := range ordered {
		v, err := semver.Parse(s)
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
		a, _ := semver.Parse(p[0])
		b, _ := semver.Parse(p[1])
		if a.Compare(b) != 0 {
			t.Errorf("%s and %s should be equal", p[0], p[1])
		}
	}
}

// FuzzParseSemver: no panic; a parsed version's canonical form parses back to an equal version;
// Compare is reflexive and antisymmetric.
func FuzzParseSemver(f *testing.F) {
	for _, s := range [][2]string{{"1.2.3", "1.2.4"}, {"v1.0.0-rc.1+b", "1.0.0"}, {"1.2", "1.2.0-0"},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta"}, {"0.0.0-0", "99999999999999999999.0.0"}, {"1.0.0+01", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := semver.Parse(a)
		vb, errB := semver.Parse(b)
		if errA == nil {
			back, err := semver.Parse(va.String())
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

// The error says why, in the order users are told: build metadata, pre-release, numbers.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty semantic version"},
		{strings.Repeat("1", 257), "semantic version longer than 256 characters"},
		{"1.2.3+a+b", `invalid semantic version "1.2.3+a+b": malformed build metadata`},
		{"01.2.3-01", `invalid semantic version "01.2.3-01": malformed pre-release`},
		{"1.2.3.4", `invalid semantic version "1.2.3.4": more than three version numbers`},
		{"1.x", `invalid semantic version "1.x": version numbers must be non-negative integers`},
		{"v", `invalid semantic version "v": version numbers must be non-negative integers`},
		{"1.02", `invalid semantic version "1.02": version numbers must not have leading zeros`},
		{"18446744073709551616", `invalid semantic version "18446744073709551616": version number out of range`},
	} {
		_, err := semver.Parse(c.in)
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%.20q) error %v, want %s", c.in, err, c.want)
		}
		if _, ok := semver.TryParse(c.in); ok {
			t.Errorf("TryParse(%.20q) accepted it", c.in)
		}
	}
}

// sinkVersion and sinkOK keep the results of the allocation test, so that the call is not
// dropped.
var (
	sinkVersion semver.Version
	sinkOK      bool
)

// The evaluator parses context attributes with TryParse on the hot path.
func TestTryParseDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"1.2.3", "v1.2.3-rc.1+build.5", "1.2.x", "01.2.3", ""} {
		if n := testing.AllocsPerRun(100, func() { sinkVersion, sinkOK = semver.TryParse(s) }); n != 0 {
			t.Errorf("TryParse(%q) allocates %v times", s, n)
		}
	}
}

// FuzzSemver checks the parser against the reference below (the first, allocating
// implementation) on what is a semantic version, its parts and the order of versions.
func FuzzSemver(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.2.3", "V1", "1.2", "1.2.3-rc.1", "1.2.3-rc.1+b.2", "1.2.3+b",
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "01.2.3", "1.2.3.4", "1..2",
		"1.2.3-", "1.2.3+", "1.2.3-01", "1-2.3", "18446744073709551615.0.0", "18446744073709551616",
		"", "v", "1.2.3 ", "1.0.0-rc-1", "1.2.3-a..b", "1.2-rc.1",
		// the edges of parseRelease, the one-pass path for plain releases
		"0", "0.0", "00", "1.", ".1", "1.2.", "9999999999999999999.0.1", "10000000000000000000.1",
		"1.2.3.", "v01", "1.2.3\x00"} {
		f.Add(s, "1.2.3-rc.1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err := semver.Parse(a)
		ra, rerr := referenceParse(a)
		if (err == nil) != (rerr == nil) || (err != nil && err.Error() != rerr.Error()) {
			t.Fatalf("%q: error %v, reference %v", a, err, rerr)
		}
		if _, ok := semver.TryParse(a); ok != (err == nil) {
			t.Fatalf("%q: TryParse ok=%v, Parse error %v", a, ok, err)
		}
		if err != nil {
			return
		}
		if va.Major != ra.major || va.Minor != ra.minor || va.Patch != ra.patch ||
			va.Prerelease != strings.Join(ra.pre, ".") || va.Build != strings.Join(ra.build, ".") {
			t.Fatalf("%q: parsed %#v, reference %#v", a, va, ra)
		}
		vb, err := semver.Parse(b)
		rb, _ := referenceParse(b)
		if err == nil {
			if got, want := va.Compare(vb), ra.compare(rb); got != want {
				t.Fatalf("Compare(%q, %q) = %d, reference %d", a, b, got, want)
			}
		}
	})
}

// reference is the first implementation of the validator: slices of identifiers, checked in
// the order users are told why a version is refused.
type reference struct {
	major, minor, patch uint64
	pre, build          []string
}

func referenceParse(s string) (reference, error) {
	var v reference
	if len(s) > semver.MaxLength {
		return v, fmt.Errorf("semantic version longer than %d characters", semver.MaxLength)
	}
	orig := s
	if s == "" {
		return v, errors.New("empty semantic version")
	}
	if s[0] == 'v' || s[0] == 'V' {
		s = s[1:]
	}
	bad := func(why string) (reference, error) {
		return reference{}, fmt.Errorf("invalid semantic version %q: %s", orig, why)
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		ids, ok := splitIdentifiers(s[i+1:], false)
		if !ok {
			return bad("malformed build metadata")
		}
		v.build, s = ids, s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		ids, ok := splitIdentifiers(s[i+1:], true)
		if !ok {
			return bad("malformed pre-release")
		}
		v.pre, s = ids, s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return bad("more than three version numbers")
	}
	nums := [3]uint64{}
	for i, p := range parts {
		if !isNumeric(p) {
			return bad("version numbers must be non-negative integers")
		}
		if len(p) > 1 && p[0] == '0' {
			return bad("version numbers must not have leading zeros")
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return bad("version number out of range")
		}
		nums[i] = n
	}
	v.major, v.minor, v.patch = nums[0], nums[1], nums[2]
	return v, nil
}

func splitIdentifiers(s string, prerelease bool) ([]string, bool) {
	ids := strings.Split(s, ".")
	for _, id := range ids {
		if id == "" {
			return nil, false
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return nil, false
			}
		}
		if prerelease && len(id) > 1 && id[0] == '0' && isNumeric(id) {
			return nil, false
		}
	}
	return ids, true
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (v reference) compare(w reference) int {
	if c := cmp.Compare(v.major, w.major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.minor, w.minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.patch, w.patch); c != 0 {
		return c
	}
	switch {
	case len(v.pre) == 0 && len(w.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(w.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		a, b := v.pre[i], w.pre[i]
		an, bn := isNumeric(a), isNumeric(b)
		var c int
		switch {
		case an && bn:
			c = cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
		case an:
			c = -1
		case bn:
			c = 1
		default:
			c = strings.Compare(a, b)
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.pre), len(w.pre))
}

// BenchmarkTryParse: the evaluator parses a context's version once per evaluation.
func BenchmarkTryParse(b *testing.B) {
	for _, s := range []string{"2.3.1", "v1.2.3-rc.1+build.5"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				sinkVersion, sinkOK = semver.TryParse(s)
			}
		})
	}
}
