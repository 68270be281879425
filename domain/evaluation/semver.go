package evaluation

import (
	"cmp"
	"strings"

	"github.com/vexil-flags/vexil/domain"
)

// semver is a semantic version parsed without allocating: the pre-release identifiers stay one
// string. parseSemver accepts exactly what domain.ParseSemver accepts and compareSemver orders
// exactly like domain.Semver.Compare (a fuzz test checks both), but evaluation parses context
// attributes on the hot path, where domain.ParseSemver's slices would cost allocations.
type semver struct {
	major, minor, patch uint64
	pre                 string // dot-separated pre-release identifiers, "" for a release
}

func parseSemver(s string) (semver, bool) {
	var v semver
	if s == "" || len(s) > domain.MaxSemverLength {
		return v, false
	}
	if s[0] == 'v' || s[0] == 'V' {
		s = s[1:]
	}
	// One pass over the version numbers: up to three dot-separated decimals without leading
	// zeros, each fitting a uint64, ended by the end of the string, '-' or '+'.
	var nums [3]uint64
	n, i := 0, 0
	for {
		start := i
		var x uint64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			d := uint64(s[i] - '0')
			if x > (^uint64(0)-d)/10 {
				return v, false
			}
			x = x*10 + d
			i++
		}
		if i == start || (i-start > 1 && s[start] == '0') {
			return v, false
		}
		nums[n] = x
		n++
		if i < len(s) && s[i] == '.' {
			if n == 3 {
				return v, false
			}
			i++
			continue
		}
		break
	}
	if i < len(s) {
		rest := s[i:]
		build := ""
		if j := strings.IndexByte(rest, '+'); j >= 0 {
			rest, build = rest[:j], rest[j+1:]
			if !validIdentifiers(build, false) {
				return v, false
			}
		}
		if rest != "" {
			if rest[0] != '-' || !validIdentifiers(rest[1:], true) {
				return v, false
			}
			v.pre = rest[1:]
		}
	}
	v.major, v.minor, v.patch = nums[0], nums[1], nums[2]
	return v, true
}

// validIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]; numeric pre-release
// identifiers must not have leading zeros.
func validIdentifiers(s string, prerelease bool) bool {
	for {
		id := s
		j := strings.IndexByte(s, '.')
		if j >= 0 {
			id = s[:j]
		}
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if prerelease && numeric && len(id) > 1 && id[0] == '0' {
			return false
		}
		if j < 0 {
			return true
		}
		s = s[j+1:]
	}
}

// compareSemver orders versions by semver.org precedence, like domain.Semver.Compare.
func compareSemver(a, b semver) int {
	if c := cmp.Compare(a.major, b.major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.minor, b.minor); c != 0 {
		return c
	}
	if c := cmp.Compare(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case a.pre == "" && b.pre == "":
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	x, y := a.pre, b.pre
	for {
		xi, xrest, xmore := strings.Cut(x, ".")
		yi, yrest, ymore := strings.Cut(y, ".")
		if c := comparePrerelease(xi, yi); c != 0 {
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

func comparePrerelease(a, b string) int {
	an, bn := isNumeric(a), isNumeric(b)
	switch {
	case an && bn:
		// No leading zeros, so the longer number is the larger, beyond uint64 too.
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
