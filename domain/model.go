package domain

import (
	"regexp"
	"time"
)

// keyPattern is the shape of every key a user chooses (project, environment, flag, variation,
// segment, goal, experiment): URL-safe, so keys appear in paths without escaping.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// ValidKey reports whether s is a well-formed key.
func ValidKey(s string) bool { return keyPattern.MatchString(s) }

// Project groups environments, flags and segments.
type Project struct {
	Key          string                  `json:"key"`
	Name         string                  `json:"name"`
	Description  string                  `json:"description,omitempty"`
	Environments map[string]*Environment `json:"environments"`
	// EnvironmentOrder keeps environments in creation order for stable listings.
	EnvironmentOrder []string  `json:"environment_order"`
	Version          int64     `json:"version"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Environment is a deployment target (development, staging, production) with its own flag
// targeting and its own SDK keys. The client-side key is public (it ships in browsers and apps) and
// only ever receives pre-evaluated results; the server-side key is a secret that receives the rules.
type Environment struct {
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	Color     string    `json:"color,omitempty"`
	ClientKey string    `json:"client_key"`
	ServerKey string    `json:"server_key"`
	CreatedAt time.Time `json:"created_at"`
	// ServerExposures: the api role records the experiment exposures of the OFREP answers it
	// serves here (to contexts with a targeting key), so experiments work with OpenFeature
	// clients that post no events. On unless turned off.
	ServerExposures bool `json:"server_exposures"`
	// Protection, when set, makes every change to what the environment serves a change request
	// (four eyes); see Protection.
	Protection *Protection `json:"protection,omitempty"`
}

// SDK key kinds.
const (
	ClientSideKey = "client"
	ServerSideKey = "server"
)

// Token scopes for the management API. Each scope implies the ones before it.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
	// ScopeEdge is the credential of an edge process (vexil serve --roles edge): it mirrors the
	// rulesets and SDK keys of its project (or every project) and environments, and forwards SDK
	// events, through /edge/v1 only. It reaches no management route; only admins issue it.
	ScopeEdge = "edge"
)

// APIToken grants access to the management API. Only the SHA-256 hash of the secret is kept.
type APIToken struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Hash    string `json:"hash"`              // hex SHA-256 of the secret
	Scope   string `json:"scope"`             // read, write or admin
	Project string `json:"project,omitempty"` // empty: every project
	// Environments narrows an edge token to these environments of its project; empty: all.
	Environments []string  `json:"environments,omitempty"`
	Revoked      bool      `json:"revoked"`
	CreatedAt    time.Time `json:"created_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	Version      int64     `json:"version"`
}

// FlagType is the type every variation value of a flag has.
type FlagType string

const (
	FlagBoolean FlagType = "boolean"
	FlagString  FlagType = "string"
	FlagNumber  FlagType = "number"
	FlagJSON    FlagType = "json"
)

// Variation is one value a flag can serve. Value holds the decoded JSON value: bool, string,
// float64, or (for JSON flags) any JSON value.
type Variation struct {
	Key         string `json:"key"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Value       any    `json:"value"`
}

// Flag is the flag aggregate: its identity and variations are shared by every environment; the
// targeting is per environment.
type Flag struct {
	Project     string      `json:"project"`
	Key         string      `json:"key"`
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Tags        []string    `json:"tags"`
	Type        FlagType    `json:"type"`
	Variations  []Variation `json:"variations"`
	// Salt is mixed into the bucketing hash; it is fixed at creation so that a flag deleted and
	// re-created under the same key does not reuse the old buckets.
	Salt string `json:"salt"`
	// ClientSide makes the flag visible to client-side keys (pre-evaluated). Server-side keys see
	// every flag.
	ClientSide bool `json:"client_side"`
	// Environments holds the targeting per environment key. An environment missing here (created
	// after the flag) serves Defaults.OffVariation with the flag off.
	Environments map[string]*Targeting `json:"environments"`
	Defaults     FlagDefaults          `json:"defaults"`
	Archived     bool                  `json:"archived"`
	Version      int64                 `json:"version"`
	CreatedAt    time.Time             `json:"created_at"`
	UpdatedAt    time.Time             `json:"updated_at"`
}

// FlagDefaults are the variations a new environment starts with.
type FlagDefaults struct {
	OnVariation  string `json:"on_variation"`
	OffVariation string `json:"off_variation"`
}

// Targeting is a flag's configuration in one environment. Evaluation order: off ->
// prerequisites -> individual targets -> rules in order -> default.
type Targeting struct {
	On            bool           `json:"on"`
	OffVariation  string         `json:"off_variation"`
	Prerequisites []Prerequisite `json:"prerequisites"`
	Targets       []Target       `json:"targets"`
	Rules         []Rule         `json:"rules"`
	Default       Serve          `json:"default"`
}

// Prerequisite requires another flag of the same project to serve a given variation (and to be on).
type Prerequisite struct {
	Flag      string `json:"flag"`
	Variation string `json:"variation"`
}

// Target serves a variation to individual users, by targeting key.
type Target struct {
	Variation string   `json:"variation"`
	Values    []string `json:"values"`
}

// Rule serves a variation, or a split, to contexts that match all of its clauses.
type Rule struct {
	ID          string   `json:"id"` // stable across edits, so stats and explain can name it
	Description string   `json:"description,omitempty"`
	Clauses     []Clause `json:"clauses"`
	Serve       Serve    `json:"serve"`
}

// Serve is what a rule or the default serves: exactly one of a fixed variation or a split.
type Serve struct {
	Variation string `json:"variation,omitempty"`
	Split     *Split `json:"split,omitempty"`
}

// BucketCount is the number of buckets a split divides users into; weights are in these units,
// so a weight of 1000 is 1%.
const BucketCount = 100000

// Split is a percentage rollout. Users land in a bucket by a stable hash (see Bucket) and keep it
// when weights change: raising a variation from 10% to 20% keeps the first 10% where they were.
type Split struct {
	// BucketBy names the context attribute hashed into a bucket; empty means the targeting key.
	BucketBy string `json:"bucket_by,omitempty"`
	// Seed replaces the flag key in the hash when set, e.g. so an experiment's traffic is
	// independent of the flag's other splits.
	Seed       string              `json:"seed,omitempty"`
	Variations []WeightedVariation `json:"variations"`
}

// WeightedVariation is one slice of a split; weights of a split add up to BucketCount.
type WeightedVariation struct {
	Variation string `json:"variation"`
	Weight    int    `json:"weight"`
}

// Operator is a clause operator.
type Operator string

const (
	OpEquals     Operator = "equals"      // exactly one value
	OpNotEquals  Operator = "not_equals"  // exactly one value
	OpIn         Operator = "in"          // any of the values
	OpNotIn      Operator = "not_in"      // none of the values
	OpContains   Operator = "contains"    // string contains any value
	OpStartsWith Operator = "starts_with" // string starts with any value
	OpEndsWith   Operator = "ends_with"   // string ends with any value
	OpMatches    Operator = "matches"     // string matches any regular expression (RE2)
	OpLT         Operator = "lt"          // number < any value
	OpLTE        Operator = "lte"
	OpGT         Operator = "gt"
	OpGTE        Operator = "gte"
	OpSemverEq   Operator = "semver_eq" // semantic versions (2.0.0), "v" prefix allowed
	OpSemverLT   Operator = "semver_lt"
	OpSemverGT   Operator = "semver_gt"
	OpBefore     Operator = "before"     // date (RFC 3339 string or Unix milliseconds) before a value
	OpAfter      Operator = "after"      // date after a value
	OpExists     Operator = "exists"     // the attribute is present and not null; no values
	OpInSegment  Operator = "in_segment" // the context is in any of the segments named by values
)

// Operators lists every operator, in documentation order.
var Operators = []Operator{OpEquals, OpNotEquals, OpIn, OpNotIn, OpContains, OpStartsWith,
	OpEndsWith, OpMatches, OpLT, OpLTE, OpGT, OpGTE, OpSemverEq, OpSemverLT, OpSemverGT,
	OpBefore, OpAfter, OpExists, OpInSegment}

// Clause tests one context attribute. Values are JSON scalars (string, float64, bool). When the
// context attribute is an array, the clause matches if any element matches. An attribute of the
// wrong type never matches (and never panics). Negate inverts the result, including for a missing
// attribute.
type Clause struct {
	Attribute string   `json:"attribute,omitempty"` // "key" is the targeting key; unused by in_segment
	Operator  Operator `json:"op"`
	Values    []any    `json:"values"`
	Negate    bool     `json:"negate,omitempty"`
}

// Segment match modes.
const (
	MatchAll = "all"
	MatchAny = "any"
)

// Segment is a reusable audience shared by the environments of a project. Excluded wins over
// included, included wins over the clauses.
type Segment struct {
	Project     string    `json:"project"`
	Key         string    `json:"key"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Tags        []string  `json:"tags"`
	Match       string    `json:"match"` // all or any
	Clauses     []Clause  `json:"clauses"`
	Included    []string  `json:"included"`
	Excluded    []string  `json:"excluded"`
	Archived    bool      `json:"archived"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}
