package evaluation

import "github.com/vexil-flags/vexil/domain"

// Reasons, as OpenFeature names them, plus Vexil's PREREQUISITE_FAILED.
const (
	ReasonDisabled       = "DISABLED"        // the flag is off in the environment
	ReasonTargetingMatch = "TARGETING_MATCH" // an individual target or a rule served a fixed variation
	ReasonSplit          = "SPLIT"           // a weighted split (of a rule or the default) chose the variation
	ReasonDefault        = "DEFAULT"         // no target or rule matched; the default served a fixed variation
	ReasonError          = "ERROR"           // see ErrorCode; no value is served
	// ReasonPrerequisiteFailed is Vexil's own reason: a prerequisite is not met, the off variation
	// is served. OpenFeature lets providers add reasons; clients treat unknown ones as opaque.
	ReasonPrerequisiteFailed = "PREREQUISITE_FAILED"
)

// Error codes, as OpenFeature names them.
const (
	ErrorFlagNotFound        = "FLAG_NOT_FOUND"        // no such flag in the ruleset (or archived)
	ErrorTargetingKeyMissing = "TARGETING_KEY_MISSING" // a split has no bucket-by value to hash
	ErrorParse               = "PARSE_ERROR"           // the flag configuration reached is invalid
	ErrorTypeMismatch        = "TYPE_MISMATCH"         // the value is not of the expected type
	ErrorGeneral             = "GENERAL"               // anything else (no ruleset loaded)
)

// Result is the outcome of evaluating one flag for one context.
type Result struct {
	FlagKey string
	// Value is the served variation's value, shared with the compiled ruleset: treat it as
	// read-only. It is nil on ERROR and when no variation is served (empty off variation).
	Value          any
	Variation      string // the variation key, "" when none
	VariationIndex int    // index in the flag's variations, -1 when none
	Reason         string
	ErrorCode      string // set only when Reason is ERROR
	ErrorMessage   string // a human-readable detail for ERROR
	RuleID         string // the rule that matched (or failed), "" when none
	RuleIndex      int    // its index in the flag's rules, -1 when none
	Bucket         int    // the split bucket in [0, BucketCount), -1 when no split served
	FlagVersion    int64  // the flag aggregate's version, 0 when the flag is not found
	// Experiment is the key of the running experiment that served the variation, "" when the
	// flag's own targeting did: exposures carry it so experiment analysis can attribute them.
	Experiment string
}

// IsError reports whether the evaluation failed; the caller then serves its code default.
func (r Result) IsError() bool { return r.Reason == ReasonError }

// WithType returns r unchanged when it is an error, carries no value, or holds a value of type
// want; otherwise it returns r as a TYPE_MISMATCH error. Typed clients (GetBool, GetString, ...)
// call it with the type they expect.
func (r Result) WithType(want domain.FlagType) Result {
	if r.IsError() || r.Value == nil || domain.ValidateValueType(want, r.Value) {
		return r
	}
	r.Reason, r.ErrorCode = ReasonError, ErrorTypeMismatch
	r.ErrorMessage = "flag " + r.FlagKey + " does not hold a " + string(want) + " value"
	r.Value, r.Variation, r.VariationIndex = nil, "", -1
	return r
}

// BucketCount is the number of split buckets, domain.BucketCount.
const BucketCount = domain.BucketCount

// Evaluation limits, enforced by Compile so that evaluation time stays bounded.
const (
	// MaxPrerequisiteDepth is the longest chain of prerequisites below a flag; deeper chains fail.
	MaxPrerequisiteDepth = 20
	// MaxPrerequisiteEvaluations bounds the flag evaluations the prerequisites of one flag can
	// cost (with shared prerequisites counted each time they are reached).
	MaxPrerequisiteEvaluations = 1000
	// MaxSegmentEvaluations bounds the segment checks one in_segment reference can cost through
	// nested segments.
	MaxSegmentEvaluations = 1000
)
