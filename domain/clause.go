package domain

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/vexil-flags/vexil/domain/datetime"
	"github.com/vexil-flags/vexil/domain/semver"
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
)

// MaxSemverLength is the most characters of a semantic version.
const MaxSemverLength = semver.MaxLength

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
		if _, err := semver.Parse(s); err != nil {
			return err.Error()
		}
	case OpBefore, OpAfter:
		switch v.(type) {
		case string, float64:
			if _, ok := datetime.Parse(v); !ok {
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
