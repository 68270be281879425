// Package semver parses and orders semantic versions (https://semver.org) for the semver_eq,
// semver_lt and semver_gt clause operators: one parser for the validator of clause values
// (package domain, which wants a reason for a refusal) and for the evaluator of context
// attributes (package domain/evaluation, which parses on the hot path and must not allocate).
package semver

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// MaxLength is the most characters a semantic version may have.
const MaxLength = 256

// Version is a parsed semantic version. The pre-release and build identifiers stay the
// dot-separated strings they were ("rc.1"), so parsing allocates nothing. Build metadata is kept
// for display but ignored by Compare, as the specification requires.
type Version struct {
	Major, Minor, Patch uint64
	Prerelease          string // dot-separated pre-release identifiers, e.g. "rc.1"; "" for a release
	Build               string // dot-separated build identifiers; "" for none
}

// Parse parses a semantic version. Beyond strict semver.org syntax it accepts a leading "v"
// ("v1.2.3") and, like LaunchDarkly, missing minor and patch numbers ("1.2" is 1.2.0, "1" is
// 1.0.0), also before a pre-release or build suffix ("1.2-rc.1"). Numbers and numeric
// pre-release identifiers must not have leading zeros; identifiers use [0-9A-Za-z-] only. The
// error says why s is refused, for the user who wrote it.
func Parse(s string) (Version, error) {
	v, why := parse(s)
	switch why {
	case "":
		return v, nil
	case whyTooLong:
		return Version{}, fmt.Errorf("semantic version longer than %d characters", MaxLength)
	case whyEmpty:
		return Version{}, fmt.Errorf("empty semantic version")
	}
	return Version{}, fmt.Errorf("invalid semantic version %q: %s", s, why)
}

// TryParse is Parse without the error, for hot paths: it allocates nothing.
func TryParse(s string) (Version, bool) {
	v, why := parse(s)
	return v, why == ""
}

const (
	whyTooLong = "too long"
	whyEmpty   = "empty"
)

// parse parses s and says why not when it is not a version. The reasons are checked in the
// order users are told them: build metadata, pre-release, then the version numbers.
func parse(s string) (Version, string) {
	var v Version
	if len(s) > MaxLength {
		return v, whyTooLong
	}
	if s == "" {
		return v, whyEmpty
	}
	if s[0] == 'v' || s[0] == 'V' {
		s = s[1:]
	}
	if v, ok := parseRelease(s); ok {
		return v, ""
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if !validIdentifiers(s[i+1:], false) {
			return Version{}, "malformed build metadata"
		}
		v.Build, s = s[i+1:], s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		if !validIdentifiers(s[i+1:], true) {
			return Version{}, "malformed pre-release"
		}
		v.Prerelease, s = s[i+1:], s[:i]
	}
	if strings.Count(s, ".") > 2 {
		return Version{}, "more than three version numbers"
	}
	var nums [3]uint64
	for i := 0; ; i++ {
		p, rest, more := strings.Cut(s, ".")
		if !isNumeric(p) {
			return Version{}, "version numbers must be non-negative integers"
		}
		if len(p) > 1 && p[0] == '0' {
			return Version{}, "version numbers must not have leading zeros"
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, "version number out of range"
		}
		nums[i] = n
		if !more {
			break
		}
		s = rest
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, ""
}

// parseRelease is the evaluator's fast path for what context attributes nearly always hold: a
// release of one to three numbers ("2.3.1", "2.3", "2"), read in one pass. It gives up (false)
// on anything else, including what it could refuse itself (a leading zero, "1..2"), so that
// parse says why; and on a number of 20 digits, which may overflow. What it accepts, the full
// parse below accepts with the same result (FuzzSemver compares both with a reference).
func parseRelease(s string) (Version, bool) {
	var nums [3]uint64
	n, digits := 0, 0
	var cur uint64
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if (digits == 1 && cur == 0) || digits == 19 {
				return Version{}, false
			}
			cur = cur*10 + uint64(c-'0')
			digits++
		case c == '.' && digits > 0 && n < 2:
			nums[n] = cur
			n, cur, digits = n+1, 0, 0
		default:
			return Version{}, false
		}
	}
	if digits == 0 {
		return Version{}, false
	}
	nums[n] = cur
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, true
}

// validIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]; numeric pre-release
// identifiers must not have leading zeros.
func validIdentifiers(s string, prerelease bool) bool {
	for {
		id, rest, more := strings.Cut(s, ".")
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if prerelease && len(id) > 1 && id[0] == '0' && isNumeric(id) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
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

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than w in semver.org
// precedence: major, minor, patch numerically; a pre-release is lower than its release;
// pre-release identifiers compare left to right, numeric ones numerically and lower than
// alphanumeric ones (compared in ASCII order), and a shorter list is lower when all shared
// identifiers are equal. Build metadata is ignored.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, w.Patch); c != 0 {
		return c
	}
	switch {
	case v.Prerelease == "" && w.Prerelease == "":
		return 0
	case v.Prerelease == "":
		return 1
	case w.Prerelease == "":
		return -1
	}
	x, y := v.Prerelease, w.Prerelease
	for {
		xi, xrest, xmore := strings.Cut(x, ".")
		yi, yrest, ymore := strings.Cut(y, ".")
		if c := compareIdentifier(xi, yi); c != 0 {
			return c
		}
		switch {
		case !xmore && !ymore:
			return 0
		case !xmore:
			return -1
		case !ymore:
			return 1
		}
		x, y = xrest, yrest
	}
}

// compareIdentifier orders two pre-release identifiers.
func compareIdentifier(a, b string) int {
	an, bn := isNumeric(a), isNumeric(b)
	switch {
	case an && bn:
		// No leading zeros, so the longer number is the larger; this also works beyond uint64.
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

// String returns the canonical form: "1.2.0-rc.1+build.5", without a "v" prefix.
func (v Version) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(v.Major, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Minor, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Patch, 10))
	if v.Prerelease != "" {
		b.WriteByte('-')
		b.WriteString(v.Prerelease)
	}
	if v.Build != "" {
		b.WriteByte('+')
		b.WriteString(v.Build)
	}
	return b.String()
}
