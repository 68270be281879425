package domain

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a user may write. They bound the size of rulesets that every SDK downloads and
// every api replica holds in memory, and the work one evaluation can cost.
const (
	MaxNameLength        = 200   // characters of a name (project, environment, flag, segment, ...)
	MaxDescriptionLength = 2000  // characters of a description
	MaxTags              = 50    // tags per flag or segment
	MaxTagLength         = 64    // characters of one tag
	MaxAttributeLength   = 200   // characters of a clause attribute or a split's bucket_by
	MaxClauseValues      = 10000 // values of one clause
	MaxClauseValueLength = 1000  // characters of one string value of a clause (and of a regexp)
	MaxSemverLength      = 256   // characters of a semantic version
)

// operatorSet is Operators as a set, for validation.
var operatorSet = func() map[Operator]bool {
	m := make(map[Operator]bool, len(Operators))
	for _, op := range Operators {
		m[op] = true
	}
	return m
}()

// ValidOperator reports whether op is one of Operators.
func ValidOperator(op Operator) bool { return operatorSet[op] }

// ValidateClause checks one clause. Field paths in the returned *Error are relative to the clause
// ("values[1]", "op"); callers anchor them with WithField. in_segment values must name existing,
// non-archived segments of cat (a nil catalog knows no segment). Cycles between segments are the
// segment's concern, not the clause's (see Segment validation).
func ValidateClause(c Clause, cat *Catalog) error {
	if err := validateClause(c, cat); err != nil {
		return err
	}
	return nil
}

func validateClause(c Clause, cat *Catalog) *Error {
	if !ValidOperator(c.Operator) {
		return Invalid("op", "unknown operator %q", truncate(string(c.Operator), 40))
	}
	if c.Operator != OpInSegment || c.Attribute != "" {
		// in_segment ignores the attribute, but when one is given it must still be sane so that
		// it round-trips and displays cleanly.
		if err := validAttribute(c.Attribute); err != "" {
			return Invalid("attribute", "%s", err)
		}
	}
	n := len(c.Values)
	switch c.Operator {
	case OpEquals, OpNotEquals:
		if n != 1 {
			return Invalid("values", "operator %s takes exactly 1 value, got %d", c.Operator, n)
		}
	case OpExists:
		if n != 0 {
			return Invalid("values", "operator exists takes no values, got %d", n)
		}
	default:
		if n == 0 {
			return Invalid("values", "operator %s takes at least 1 value", c.Operator)
		}
	}
	if n > MaxClauseValues {
		return Invalid("values", "at most %d values, got %d", MaxClauseValues, n)
	}
	for i, v := range c.Values {
		if msg := validClauseValue(c.Operator, v, cat); msg != "" {
			return Invalid(fmt.Sprintf("values[%d]", i), "%s", msg)
		}
	}
	return nil
}

// validClauseValue returns why v is not a valid value for op, or "".
func validClauseValue(op Operator, v any, cat *Catalog) string {
	// Every value is a JSON scalar, whatever the operator.
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return "value is not valid UTF-8"
		}
		if utf8.RuneCountInString(x) > MaxClauseValueLength {
			return fmt.Sprintf("value longer than %d characters", MaxClauseValueLength)
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "number must be finite"
		}
	case bool:
	case nil:
		return "value must not be null"
	default:
		return fmt.Sprintf("value must be a string, number or boolean, not %s", jsonKind(v))
	}

	switch op {
	case OpContains, OpStartsWith, OpEndsWith:
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("operator %s takes strings, not %s", op, jsonKind(v))
		}
	case OpMatches:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("operator matches takes regular expressions as strings, not %s", jsonKind(v))
		}
		if _, err := regexp.Compile(s); err != nil {
			return fmt.Sprintf("invalid regular expression: %v", err)
		}
	case OpLT, OpLTE, OpGT, OpGTE:
		if _, ok := v.(float64); !ok {
			return fmt.Sprintf("operator %s takes numbers, not %s", op, jsonKind(v))
		}
	case OpSemverEq, OpSemverLT, OpSemverGT:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("operator %s takes semantic versions as strings, not %s", op, jsonKind(v))
		}
		if _, err := ParseSemver(s); err != nil {
			return err.Error()
		}
	case OpBefore, OpAfter:
		switch v.(type) {
		case string, float64:
			if _, ok := ParseDate(v); !ok {
				return fmt.Sprintf("operator %s takes RFC 3339 dates or Unix milliseconds, got %s", op, truncate(fmt.Sprint(v), 60))
			}
		default:
			return fmt.Sprintf("operator %s takes RFC 3339 dates or Unix milliseconds, not %s", op, jsonKind(v))
		}
	case OpInSegment:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("operator in_segment takes segment keys, not %s", jsonKind(v))
		}
		if !ValidKey(s) {
			return fmt.Sprintf("invalid segment key %q", truncate(s, 100))
		}
		seg, ok := cat.Segment(s)
		if !ok {
			return fmt.Sprintf("unknown segment %q", s)
		}
		if seg.Archived {
			return fmt.Sprintf("segment %q is archived", s)
		}
	}
	return ""
}

// validAttribute returns why a context attribute name is unusable, or "".
func validAttribute(a string) string {
	switch {
	case strings.TrimSpace(a) == "":
		return "attribute is required"
	case !utf8.ValidString(a):
		return "attribute is not valid UTF-8"
	case utf8.RuneCountInString(a) > MaxAttributeLength:
		return fmt.Sprintf("attribute longer than %d characters", MaxAttributeLength)
	}
	return ""
}

// ClauseSegments returns the segment keys named by the in_segment clauses of cs, in order of
// appearance, without duplicates.
func ClauseSegments(cs []Clause) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cs {
		if c.Operator != OpInSegment {
			continue
		}
		for _, v := range c.Values {
			if s, ok := v.(string); ok && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// ValidateValueType reports whether v is a valid variation value of a flag of type t, as decoded
// from JSON: boolean flags hold bool, string flags string, number flags a finite float64, and JSON
// flags any JSON value except a top-level null (nested values are checked to be JSON values:
// nil, bool, string, finite float64, []any, map[string]any).
func ValidateValueType(t FlagType, v any) bool {
	switch t {
	case FlagBoolean:
		_, ok := v.(bool)
		return ok
	case FlagString:
		s, ok := v.(string)
		return ok && utf8.ValidString(s)
	case FlagNumber:
		f, ok := v.(float64)
		return ok && !math.IsNaN(f) && !math.IsInf(f, 0)
	case FlagJSON:
		return v != nil && isJSONValue(v, 0)
	}
	return false
}

// maxJSONDepth bounds the nesting of JSON flag values (encoding/json allows 10000).
const maxJSONDepth = 64

func isJSONValue(v any, depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch x := v.(type) {
	case nil, bool:
		return true
	case string:
		return utf8.ValidString(x)
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case []any:
		for _, e := range x {
			if !isJSONValue(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !isJSONValue(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// ---- Dates ----

// maxDateMillis bounds dates given as Unix milliseconds to the range of ECMAScript dates
// (±100,000,000 days), far inside what time.Time and int64 nanoseconds arithmetic can hold.
const maxDateMillis = 8.64e15

// ParseDate interprets a clause value or context attribute as an instant: an RFC 3339 string
// ("2024-05-01T12:00:00Z", fractional seconds allowed) or a number of Unix milliseconds (float64
// as decoded from JSON; int, int64 and json.Number are accepted too). The result is in UTC.
// ok is false for anything else, including non-finite or out-of-range numbers.
func ParseDate(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		if len(x) > 64 {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	case float64:
		return millisToTime(x)
	case int:
		return millisToTime(float64(x))
	case int64:
		return millisToTime(float64(x))
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return millisToTime(f)
	}
	return time.Time{}, false
}

func millisToTime(ms float64) (time.Time, bool) {
	if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > maxDateMillis {
		return time.Time{}, false
	}
	whole := math.Trunc(ms)
	frac := ms - whole
	return time.UnixMilli(int64(whole)).Add(time.Duration(frac * float64(time.Millisecond))).UTC(), true
}

// ---- Semantic versions ----

// Semver is a parsed semantic version (https://semver.org). Build metadata is kept for display
// but ignored by Compare, as the specification requires.
type Semver struct {
	Major, Minor, Patch uint64
	Prerelease          []string // dot-separated pre-release identifiers, e.g. ["rc", "1"]
	Build               []string // dot-separated build identifiers
}

var errSemverEmpty = errors.New("empty semantic version")

// ParseSemver parses a semantic version. Beyond strict semver.org syntax it accepts a leading "v"
// ("v1.2.3") and, like LaunchDarkly, missing minor and patch numbers ("1.2" is 1.2.0, "1" is
// 1.0.0), also before a pre-release or build suffix ("1.2-rc.1"). Numbers and numeric
// pre-release identifiers must not have leading zeros; identifiers use [0-9A-Za-z-] only.
func ParseSemver(s string) (Semver, error) {
	var v Semver
	if len(s) > MaxSemverLength {
		return v, fmt.Errorf("semantic version longer than %d characters", MaxSemverLength)
	}
	orig := s
	if s == "" {
		return v, errSemverEmpty
	}
	if s[0] == 'v' || s[0] == 'V' {
		s = s[1:]
	}
	bad := func(why string) (Semver, error) {
		return Semver{}, fmt.Errorf("invalid semantic version %q: %s", orig, why)
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		ids, ok := splitIdentifiers(s[i+1:], false)
		if !ok {
			return bad("malformed build metadata")
		}
		v.Build, s = ids, s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		ids, ok := splitIdentifiers(s[i+1:], true)
		if !ok {
			return bad("malformed pre-release")
		}
		v.Prerelease, s = ids, s[:i]
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
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

// splitIdentifiers splits dot-separated identifiers and checks each one.
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

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than w in semver.org
// precedence: major, minor, patch numerically; a pre-release is lower than its release;
// pre-release identifiers compare left to right, numeric ones numerically and lower than
// alphanumeric ones (compared in ASCII order), and a shorter list is lower when all shared
// identifiers are equal. Build metadata is ignored.
func (v Semver) Compare(w Semver) int {
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
	case len(v.Prerelease) == 0 && len(w.Prerelease) == 0:
		return 0
	case len(v.Prerelease) == 0:
		return 1
	case len(w.Prerelease) == 0:
		return -1
	}
	for i := 0; i < len(v.Prerelease) && i < len(w.Prerelease); i++ {
		if c := comparePrerelease(v.Prerelease[i], w.Prerelease[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.Prerelease), len(w.Prerelease))
}

func comparePrerelease(a, b string) int {
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
func (v Semver) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(v.Major, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Minor, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Patch, 10))
	if len(v.Prerelease) > 0 {
		b.WriteByte('-')
		b.WriteString(strings.Join(v.Prerelease, "."))
	}
	if len(v.Build) > 0 {
		b.WriteByte('+')
		b.WriteString(strings.Join(v.Build, "."))
	}
	return b.String()
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ---- Text fields shared by every aggregate ----

// validName checks a required display name.
func validName(field, s string) *Error {
	switch {
	case strings.TrimSpace(s) == "":
		return Invalid(field, "name is required")
	case !utf8.ValidString(s):
		return Invalid(field, "name is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0: // PostgreSQL stores no NUL in text or jsonb
		return Invalid(field, "name contains a NUL character")
	case utf8.RuneCountInString(s) > MaxNameLength:
		return Invalid(field, "name longer than %d characters", MaxNameLength)
	}
	return nil
}

// validOptionalName checks an optional display name (of a variation, for example).
func validOptionalName(field, s string) *Error {
	if s == "" {
		return nil
	}
	return validName(field, s)
}

// validDescription checks an optional free-text description.
func validDescription(field, s string) *Error {
	switch {
	case !utf8.ValidString(s):
		return Invalid(field, "description is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return Invalid(field, "description contains a NUL character")
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		return Invalid(field, "description longer than %d characters", MaxDescriptionLength)
	}
	return nil
}

// normalizeTags checks tags (each a key of at most MaxTagLength characters) and returns them
// deduplicated and sorted, never nil, so equal sets of tags are equal values.
func normalizeTags(field string, tags []string) ([]string, *Error) {
	set := make(map[string]bool, len(tags))
	for i, t := range tags {
		if !ValidKey(t) || len(t) > MaxTagLength {
			return nil, Invalid(fmt.Sprintf("%s[%d]", field, i),
				"invalid tag %q: letters, digits, '.', '_' and '-', at most %d characters, starting with a letter or digit",
				truncate(t, 80), MaxTagLength)
		}
		set[t] = true
	}
	if len(set) > MaxTags {
		return nil, Invalid(field, "at most %d tags, got %d", MaxTags, len(set))
	}
	return sortedKeys(set), nil
}
