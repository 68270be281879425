// Package evaluation is Vexil's flag evaluation engine. The api role and the Go SDK both use it,
// so a flag evaluates to the same variation on the server and in every Go process. It is pure:
// standard library and the domain package only.
//
// # Use
//
// Compile a ruleset once, when it arrives, and evaluate as often as needed:
//
//	c, err := evaluation.Compile(ruleset)
//	res := c.Evaluate("new-checkout", &evaluation.Context{Key: "user-42",
//		Attributes: map[string]any{"country": "NL", "plan": "pro"}})
//
// A *Compiled is immutable and safe for concurrent use; a new ruleset version is a new Compile
// and an atomic swap of the pointer. Evaluate does no JSON and no locking, and allocates nothing
// except on rare paths (a bucketing input over 256 bytes, a date attribute in an unusual RFC 3339
// form). Attribute lookups are cached for the duration of one Evaluate or EvaluateAll call.
//
// # Order of evaluation
//
//  1. The flag is not in the ruleset (never created, deleted or archived: the ruleset projector
//     drops archived flags): reason ERROR, error FLAG_NOT_FOUND.
//  2. The flag is off in the environment: the off variation, reason DISABLED.
//  3. A prerequisite is not met: the off variation, reason PREREQUISITE_FAILED.
//  4. The targeting key is listed in an individual target: that variation, TARGETING_MATCH.
//  5. Rules in order; the first rule whose clauses all match serves: TARGETING_MATCH for a fixed
//     variation, SPLIT when a weighted split chose it. A rule without clauses matches everyone.
//  6. The default serve: DEFAULT for a fixed variation, SPLIT for a split.
//
// An empty off variation means "no variation": Value is nil, Variation is "" and VariationIndex is
// -1, and the caller serves its own code default (as OpenFeature providers do for DISABLED).
//
// # Reasons and error codes
//
// Reasons are OpenFeature's strings (DISABLED, TARGETING_MATCH, SPLIT, DEFAULT, ERROR) plus
// Vexil's own PREREQUISITE_FAILED, which OpenFeature allows as a provider-specific reason.
// An ERROR result carries no value: the caller serves its code default. Error codes are
// OpenFeature's: FLAG_NOT_FOUND, TARGETING_KEY_MISSING (a split cannot bucket the context),
// PARSE_ERROR (the part of the flag configuration that evaluation reached is invalid),
// TYPE_MISMATCH (a served variation's value is not of the flag's type, or not of the type the
// caller asked for, see Result.WithType) and GENERAL (no ruleset).
//
// # Prerequisites
//
// A prerequisite is met when the prerequisite flag is in the ruleset, is on, passes its own
// prerequisites, evaluates without error (same context) and serves the required variation. So
// prerequisites are transitive: if A requires B and B's own prerequisite fails, A fails too, even
// when B's off variation happens to be the one A requires. A prerequisite on a missing flag, or
// naming a variation the flag does not have, is never met. Cycles, chains deeper than
// MaxPrerequisiteDepth, and graphs that would cost more than MaxPrerequisiteEvaluations flag
// evaluations are detected by Compile and count as not met: evaluation never loops.
//
// # Clauses
//
// A rule matches when all its clauses match. A clause reads one context attribute:
//
//   - "key" is the targeting key (Context.Key); an empty key counts as missing.
//   - An attribute containing "/" is a path into nested objects and arrays, JSON-pointer style:
//     "address/city", "devices/0/os" ("/address/city" is the same). As in JSON pointers, "~1"
//     stands for a literal "/" and "~0" for "~": "a~1b" is the top-level attribute "a/b".
//
// Values compare with strict JSON typing: the string "1" is not the number 1, and a number
// attribute never matches a string operator. Go numbers (int, int64, uint, float32, json.Number,
// ...) in attributes count as JSON numbers. The operators, for an attribute value v:
//
//	equals, in            v equals the value / any value (same JSON type and value)
//	not_equals, not_in    exactly the negation of equals / in
//	contains, starts_with, ends_with   v is a string containing / starting / ending with any value
//	matches               v is a string matched by any RE2 regular expression (unanchored)
//	lt, lte, gt, gte      v is a number <, <=, >, >= any value
//	semver_eq, _lt, _gt   v is a string holding a semantic version (see domain/semver)
//	                      equal to, lower or higher than any value
//	before, after         v is a date (RFC 3339 string or Unix milliseconds, see domain/datetime)
//	                      before / after any value
//	exists                v is present and not null (an empty string or array exists)
//	in_segment            the context is in any of the segments named by the values
//
// Missing attributes, wrong types and arrays, precisely. A clause first computes the result of
// its positive operator (not_equals and not_in compute equals and in), then inverts it for
// not_equals/not_in, then inverts it again when Negate is set:
//
//   - A missing attribute (absent, JSON null, or an empty targeting key) makes every positive
//     operator false, exists included. Hence not_equals and not_in MATCH a missing attribute,
//     and Negate turns any non-matching result into a match. This is what the contract in
//     domain.Clause says ("Negate inverts the result, including for a missing attribute"); it
//     differs from LaunchDarkly, where a missing attribute never matches, negated or not. Write
//     [exists, (not_in ...)] to require the attribute.
//   - A value of the wrong type (a string for lt, a number for contains, an object for equals,
//     a string that is no semantic version for semver_lt, ...) makes the positive operator false,
//     like a missing attribute; it never panics.
//   - An array attribute: the positive operator is true when any element matches (elements that
//     are themselves arrays or objects never do). So not_in on an array matches when no element
//     is in the list; an empty array matches no positive operator except exists.
//
// A clause whose values are invalid (what domain.ValidateClause rejects, an unknown operator) makes
// its rule invalid: evaluation that reaches the rule returns PARSE_ERROR. in_segment naming a
// segment that is not in the ruleset (deleted, archived, or a validation race) treats it as
// empty, as domain.Catalog documents: the clause does not match (and matches when negated).
//
// # Segments
//
// The context is in a segment when its targeting key is not in Excluded and either is in
// Included or the segment's clauses match: all of them (match "all", also when match is empty)
// or any of them (match "any"). A segment without clauses holds only its Included keys.
// Segments may use in_segment on other segments. Compile marks invalid a segment that is part of
// or leads to a cycle, or whose nesting would cost more than MaxSegmentEvaluations segment checks
// (as well as one with an invalid clause or match mode); rules using it return PARSE_ERROR.
//
// # Splits and bucketing
//
// A split places a context in one of BucketCount (100,000) buckets by a stable hash, documented in
// Bucket and in BUCKETING.md, and serves the variation whose cumulative weight range holds the
// bucket. Weights must add up to BucketCount.
//
// The bucket-by value is the targeting key, or the attribute named by Split.BucketBy: a non-empty
// string as is, or an integer number (|n| <= 2^53) in decimal. When the context has no usable
// value (the targeting key is empty; the attribute is missing, null, empty, a boolean, a
// fraction, an array or an object) the result is an ERROR with TARGETING_KEY_MISSING, for the
// targeting key and for custom attributes alike, whatever the weights. LaunchDarkly puts such
// contexts in bucket 0 instead, which silently biases the first variation of every experiment;
// an error lets the caller serve its code default and shows the problem in the flag's stats.
package evaluation
