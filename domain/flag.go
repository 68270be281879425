package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Flag limits.
const (
	MinVariations          = 2
	MaxVariations          = 100
	MaxVariationValueBytes = 32 << 10 // JSON encoding of one variation value
	MaxPrerequisites       = 50       // per environment
	MaxTargetValues        = 10000    // user keys across the individual targets of one environment
	MaxTargetKeyLength     = 1000     // characters of one targeted user key (also segment included/excluded)
	MaxRules               = 500      // per environment
	MaxClausesPerRule      = 50
	MaxSplitVariations     = 100
	MaxSaltLength          = 200 // characters of a flag's salt or a split's seed
	flagAggregate          = "flag"
)

// ruleIDPrefix prefixes the ids the domain assigns to rules submitted without one.
const ruleIDPrefix = "rule-"

// NewFlag is the input that creates a flag.
type NewFlag struct {
	Project     string      `json:"project"`
	Key         string      `json:"key"`
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	Type        FlagType    `json:"type"`
	Variations  []Variation `json:"variations,omitempty"`
	// Defaults are the on and off variations every environment starts with. Missing ones default
	// to the variations valued true and false for a boolean flag, and to the first and second
	// variation otherwise.
	Defaults   FlagDefaults `json:"defaults"`
	ClientSide bool         `json:"client_side"`
	// Salt is random, supplied by the caller (the domain has no randomness of its own).
	Salt string `json:"salt,omitempty"`
}

// FlagSettings are the descriptive settings of a flag, replaced as a whole by Flag.Update. Empty
// default variation keys keep the current defaults.
type FlagSettings struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Tags        []string     `json:"tags"`
	ClientSide  bool         `json:"client_side"`
	Defaults    FlagDefaults `json:"defaults"`
}

// ValidFlagType reports whether t is boolean, string, number or json.
func ValidFlagType(t FlagType) bool {
	switch t {
	case FlagBoolean, FlagString, FlagNumber, FlagJSON:
		return true
	}
	return false
}

// BooleanVariations are the variations of a boolean flag created without any.
func BooleanVariations() []Variation {
	return []Variation{{Key: "true", Value: true}, {Key: "false", Value: false}}
}

// CreateFlag creates a flag with initial targeting in every environment of cat: off, serving the
// default off variation, and serving the default on variation once turned on. A boolean flag
// created without variations gets BooleanVariations. A key already in cat is EConflict (the event
// store also refuses it, as the stream already exists).
func CreateFlag(in NewFlag, cat *Catalog) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.Key) {
		return nil, Invalid("key", "invalid flag key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(in.Key, 120))
	}
	if _, taken := cat.Flag(in.Key); taken {
		return nil, &Error{Code: EConflict, Field: "key", Message: fmt.Sprintf("flag %q already exists", in.Key)}
	}
	if err := validName("name", in.Name); err != nil {
		return nil, err
	}
	if err := validDescription("description", in.Description); err != nil {
		return nil, err
	}
	tags, err := normalizeTags("tags", in.Tags)
	if err != nil {
		return nil, err
	}
	if !ValidFlagType(in.Type) {
		return nil, Invalid("type", "flag type must be boolean, string, number or json, not %q", truncate(string(in.Type), 40))
	}
	vs := in.Variations
	if in.Type == FlagBoolean && len(vs) == 0 {
		vs = BooleanVariations()
	}
	vs, err = validateVariations(in.Type, vs)
	if err != nil {
		return nil, err
	}
	d := in.Defaults
	if d.OnVariation == "" {
		d.OnVariation = defaultVariation(in.Type, vs, true)
	}
	if d.OffVariation == "" {
		d.OffVariation = defaultVariation(in.Type, vs, false)
	}
	if err := validateDefaults(d, vs); err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(in.Salt) == "":
		return nil, Invalid("salt", "salt is required")
	case !utf8.ValidString(in.Salt) || utf8.RuneCountInString(in.Salt) > MaxSaltLength:
		return nil, Invalid("salt", "salt must be valid UTF-8 of at most %d characters", MaxSaltLength)
	}
	envs := map[string]*Targeting{}
	if cat != nil {
		for _, env := range cat.Environments {
			t := initialTargeting(d)
			envs[env] = &t
		}
	}
	return []Event{&FlagCreated{Project: in.Project, Key: in.Key, Name: in.Name, Description: in.Description,
		Tags: tags, Type: in.Type, Variations: vs, Salt: in.Salt, ClientSide: in.ClientSide, Defaults: d,
		Environments: envs}}, nil
}

// defaultVariation picks the default on (or off) variation when none is given.
func defaultVariation(t FlagType, vs []Variation, on bool) string {
	if t == FlagBoolean {
		for _, v := range vs {
			if b, ok := v.Value.(bool); ok && b == on {
				return v.Key
			}
		}
	}
	if on {
		return vs[0].Key
	}
	return vs[1].Key
}

// initialTargeting is the targeting of an environment the flag has never been configured in.
func initialTargeting(d FlagDefaults) Targeting {
	return Targeting{OffVariation: d.OffVariation, Prerequisites: []Prerequisite{}, Targets: []Target{},
		Rules: []Rule{}, Default: Serve{Variation: d.OnVariation}}
}

// validateVariations checks variations of a flag of type t and returns a deep copy.
func validateVariations(t FlagType, vs []Variation) ([]Variation, *Error) {
	switch {
	case len(vs) < MinVariations:
		return nil, Invalid("variations", "at least %d variations, got %d", MinVariations, len(vs))
	case len(vs) > MaxVariations:
		return nil, Invalid("variations", "at most %d variations, got %d", MaxVariations, len(vs))
	case t == FlagBoolean && len(vs) != 2:
		return nil, Invalid("variations", "a boolean flag has exactly 2 variations (true and false), got %d", len(vs))
	}
	out := make([]Variation, len(vs))
	keys := map[string]int{}
	values := map[any]int{} // scalar values, to reject duplicates
	for i, v := range vs {
		field := fmt.Sprintf("variations[%d]", i)
		if !ValidKey(v.Key) {
			return nil, Invalid(field+".key", "invalid variation key %q", truncate(v.Key, 120))
		}
		if j, dup := keys[v.Key]; dup {
			return nil, Invalid(field+".key", "duplicate variation key %q (also variations[%d])", v.Key, j)
		}
		keys[v.Key] = i
		if err := validOptionalName(field+".name", v.Name); err != nil {
			return nil, err
		}
		if err := validDescription(field+".description", v.Description); err != nil {
			return nil, err
		}
		if !ValidateValueType(t, v.Value) {
			return nil, Invalid(field+".value", "value must be %s for a %s flag, got %s", typeNoun(t), t, jsonKind(v.Value))
		}
		if t == FlagJSON {
			b, err := json.Marshal(v.Value)
			if err != nil {
				return nil, Invalid(field+".value", "value cannot be encoded as JSON: %v", err)
			}
			if len(b) > MaxVariationValueBytes {
				return nil, Invalid(field+".value", "value larger than %d bytes as JSON", MaxVariationValueBytes)
			}
		} else {
			if j, dup := values[v.Value]; dup {
				return nil, Invalid(field+".value", "duplicate value (also variations[%d])", j)
			}
			values[v.Value] = i
		}
		out[i] = Variation{Key: v.Key, Name: v.Name, Description: v.Description, Value: cloneJSON(v.Value)}
	}
	return out, nil
}

func typeNoun(t FlagType) string {
	switch t {
	case FlagBoolean:
		return "a boolean"
	case FlagString:
		return "a string"
	case FlagNumber:
		return "a finite number"
	case FlagJSON:
		return "a JSON value other than null"
	}
	return "of a known type"
}

// cloneJSON deep-copies a decoded JSON value, so state never aliases events or caller input.
func cloneJSON(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneJSON(e)
		}
		return out
	}
	return v
}

func cloneVariations(vs []Variation) []Variation {
	out := make([]Variation, len(vs))
	for i, v := range vs {
		out[i] = v
		out[i].Value = cloneJSON(v.Value)
	}
	return out
}

func validateDefaults(d FlagDefaults, vs []Variation) *Error {
	if !hasVariation(vs, d.OnVariation) {
		return Invalid("defaults.on_variation", "unknown variation %q", truncate(d.OnVariation, 120))
	}
	if !hasVariation(vs, d.OffVariation) {
		return Invalid("defaults.off_variation", "unknown variation %q", truncate(d.OffVariation, 120))
	}
	return nil
}

func hasVariation(vs []Variation, key string) bool {
	for _, v := range vs {
		if v.Key == key {
			return true
		}
	}
	return false
}

// Variation returns the variation with key key, or nil.
func (f *Flag) Variation(key string) *Variation {
	for i := range f.Variations {
		if f.Variations[i].Key == key {
			return &f.Variations[i]
		}
	}
	return nil
}

// live checks that the flag exists and is not archived: the precondition of every command but
// Restore.
func (f *Flag) live() *Error {
	if err := f.exists(); err != nil {
		return err
	}
	if f.Archived {
		return Errorf(EConflict, "flag %q is archived", f.Key)
	}
	return nil
}

func (f *Flag) exists() *Error {
	if f == nil || f.Key == "" {
		return Errorf(ENotFound, "flag not found")
	}
	return nil
}

// hasEnvironment reports whether env can be configured: an environment of the project (cat), or
// one the flag already has targeting for.
func (f *Flag) hasEnvironment(env string, cat *Catalog) *Error {
	if _, ok := f.Environments[env]; ok || cat.HasEnvironment(env) {
		return nil
	}
	return &Error{Code: ENotFound, Field: "environment", Message: fmt.Sprintf("environment %q not found", truncate(env, 120))}
}

// targeting returns the current targeting of env, the initial one if the flag has none there.
func (f *Flag) targeting(env string) Targeting {
	if t, ok := f.Environments[env]; ok && t != nil {
		return normalizeTargeting(*t)
	}
	return initialTargeting(f.Defaults)
}

// Update replaces the flag's descriptive settings.
func (f *Flag) Update(s FlagSettings) ([]Event, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	if err := validName("name", s.Name); err != nil {
		return nil, err
	}
	if err := validDescription("description", s.Description); err != nil {
		return nil, err
	}
	tags, err := normalizeTags("tags", s.Tags)
	if err != nil {
		return nil, err
	}
	d := s.Defaults
	if d.OnVariation == "" {
		d.OnVariation = f.Defaults.OnVariation
	}
	if d.OffVariation == "" {
		d.OffVariation = f.Defaults.OffVariation
	}
	if err := validateDefaults(d, f.Variations); err != nil {
		return nil, err
	}
	if s.Name == f.Name && s.Description == f.Description && equalStrings(tags, f.Tags) &&
		s.ClientSide == f.ClientSide && d == f.Defaults {
		return nil, nil
	}
	return []Event{&FlagUpdated{Name: s.Name, Description: s.Description, Tags: tags,
		ClientSide: s.ClientSide, Defaults: d}}, nil
}

// UpdateVariations replaces the variations; the flag's type cannot change. Removing (or renaming)
// a variation is rejected while it is still used: by the defaults, by the targeting of any
// environment of this flag, or as the required variation of a live flag's prerequisite (cat).
func (f *Flag) UpdateVariations(vs []Variation, cat *Catalog) ([]Event, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	out, err := validateVariations(f.Type, vs)
	if err != nil {
		return nil, err
	}
	for _, old := range f.Variations {
		if hasVariation(out, old.Key) {
			continue
		}
		if where := f.variationUse(old.Key, cat); where != "" {
			return nil, &Error{Code: EInvalid, Field: "variations",
				Message: fmt.Sprintf("variation %q cannot be removed: it is used by %s", old.Key, where),
				Details: map[string]any{"variation": old.Key, "used_by": where}}
		}
	}
	if reflect.DeepEqual(out, f.Variations) {
		return nil, nil
	}
	return []Event{&FlagVariationsUpdated{Variations: out}}, nil
}

// variationUse describes the first place variation key is used, or returns "".
func (f *Flag) variationUse(key string, cat *Catalog) string {
	switch key {
	case f.Defaults.OnVariation:
		return "defaults.on_variation"
	case f.Defaults.OffVariation:
		return "defaults.off_variation"
	}
	for _, env := range sortedKeys(f.Environments) {
		t := f.Environments[env]
		if t == nil {
			continue
		}
		if where := targetingUse(*t, key); where != "" {
			return fmt.Sprintf("the targeting of environment %q (%s)", env, where)
		}
	}
	if cat != nil {
		for _, other := range sortedKeys(cat.Flags) {
			fi := cat.Flags[other]
			if other == f.Key || fi.Archived {
				continue
			}
			for _, env := range sortedKeys(fi.Prerequisites) {
				for _, p := range fi.Prerequisites[env] {
					if p.Flag == f.Key && p.Variation == key {
						return fmt.Sprintf("a prerequisite of flag %q in environment %q", other, env)
					}
				}
			}
		}
	}
	return ""
}

// targetingUse returns the field of t that serves variation key, or "".
func targetingUse(t Targeting, key string) string {
	if t.OffVariation == key {
		return "off_variation"
	}
	for i, tg := range t.Targets {
		if tg.Variation == key {
			return fmt.Sprintf("targets[%d]", i)
		}
	}
	for i, r := range t.Rules {
		if serveUses(r.Serve, key) {
			return fmt.Sprintf("rules[%d].serve", i)
		}
	}
	if serveUses(t.Default, key) {
		return "default"
	}
	return ""
}

func serveUses(s Serve, key string) bool {
	if s.Variation == key {
		return true
	}
	if s.Split != nil {
		for _, w := range s.Split.Variations {
			if w.Variation == key {
				return true
			}
		}
	}
	return false
}

// UpdateTargeting replaces the targeting of environment env. Field paths of validation errors
// start with "targeting.". See ValidateTargeting for the rules and the rule ids it assigns.
func (f *Flag) UpdateTargeting(env string, t Targeting, cat *Catalog) ([]Event, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	if err := f.hasEnvironment(env, cat); err != nil {
		return nil, err
	}
	out, err := f.validateTargeting(env, t, cat)
	if err != nil {
		return nil, err.WithField("targeting")
	}
	if cur, ok := f.Environments[env]; ok && cur != nil && reflect.DeepEqual(out, normalizeTargeting(*cur)) {
		return nil, nil
	}
	return []Event{&FlagTargetingUpdated{Environment: env, Targeting: out}}, nil
}

// ValidateTargeting checks targeting t for environment env of the flag and returns it normalized:
// a deep copy with empty lists instead of nil ones and an id for every rule. A rule submitted
// without an id gets "rule-<n>", n counting up from the highest such number among the rules of the
// current and the submitted targeting, so ids are deterministic and never collide with an id in
// use. Field paths in the error are relative to the targeting ("rules[2].clauses[0].values[1]").
//
// Rules checked: the off variation and every served variation exist; prerequisites name other,
// existing, non-archived flags (cat) and their existing variations, at most once each, without a
// cycle in env's prerequisite graph; each user key is targeted at most once; rules have unique
// ids, 1..MaxClausesPerRule valid clauses (see ValidateClause) and a valid serve; a serve is
// exactly one of a variation or a split whose weights add up to BucketCount.
func (f *Flag) ValidateTargeting(env string, t Targeting, cat *Catalog) (Targeting, error) {
	out, err := f.validateTargeting(env, t, cat)
	if err != nil {
		return Targeting{}, err
	}
	return out, nil
}

func (f *Flag) validateTargeting(env string, in Targeting, cat *Catalog) (Targeting, *Error) {
	t := normalizeTargeting(in)
	if !hasVariation(f.Variations, t.OffVariation) {
		if t.OffVariation == "" {
			return t, Invalid("off_variation", "off variation is required")
		}
		return t, Invalid("off_variation", "unknown variation %q", truncate(t.OffVariation, 120))
	}
	if err := f.validatePrerequisites(env, t.Prerequisites, cat); err != nil {
		return t, err
	}
	if err := f.validateTargets(t.Targets); err != nil {
		return t, err
	}
	if len(t.Rules) > MaxRules {
		return t, Invalid("rules", "at most %d rules, got %d", MaxRules, len(t.Rules))
	}
	f.assignRuleIDs(env, t.Rules)
	ids := map[string]int{}
	for i, r := range t.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if !ValidKey(r.ID) {
			return t, Invalid(field+".id", "invalid rule id %q", truncate(r.ID, 120))
		}
		if j, dup := ids[r.ID]; dup {
			return t, Invalid(field+".id", "duplicate rule id %q (also rules[%d])", r.ID, j)
		}
		ids[r.ID] = i
		if err := validDescription(field+".description", r.Description); err != nil {
			return t, err
		}
		switch n := len(r.Clauses); {
		case n == 0:
			return t, Invalid(field+".clauses", "a rule needs at least 1 clause")
		case n > MaxClausesPerRule:
			return t, Invalid(field+".clauses", "at most %d clauses per rule, got %d", MaxClausesPerRule, n)
		}
		for j, c := range r.Clauses {
			if err := validateClause(c, cat); err != nil {
				return t, err.WithField(fmt.Sprintf("%s.clauses[%d]", field, j))
			}
		}
		if err := validateServe(r.Serve, f.Variations); err != nil {
			return t, err.WithField(field + ".serve")
		}
	}
	if err := validateServe(t.Default, f.Variations); err != nil {
		return t, err.WithField("default")
	}
	return t, nil
}

func (f *Flag) validatePrerequisites(env string, ps []Prerequisite, cat *Catalog) *Error {
	if len(ps) > MaxPrerequisites {
		return Invalid("prerequisites", "at most %d prerequisites, got %d", MaxPrerequisites, len(ps))
	}
	seen := map[string]int{}
	for i, p := range ps {
		field := fmt.Sprintf("prerequisites[%d]", i)
		if !ValidKey(p.Flag) {
			return Invalid(field+".flag", "invalid flag key %q", truncate(p.Flag, 120))
		}
		if p.Flag == f.Key {
			return Invalid(field+".flag", "a flag cannot be its own prerequisite")
		}
		if j, dup := seen[p.Flag]; dup {
			return Invalid(field+".flag", "flag %q is already a prerequisite (prerequisites[%d])", p.Flag, j)
		}
		seen[p.Flag] = i
		fi, ok := cat.Flag(p.Flag)
		if !ok {
			return Invalid(field+".flag", "unknown flag %q", p.Flag)
		}
		if fi.Archived {
			return Invalid(field+".flag", "flag %q is archived", p.Flag)
		}
		if !fi.HasVariation(p.Variation) {
			return Invalid(field+".variation", "flag %q has no variation %q", p.Flag, truncate(p.Variation, 120))
		}
	}
	// Only now that every edge is known: does any prerequisite lead back to this flag?
	for i, p := range ps {
		if cat.prerequisitePath(env, p.Flag, f.Key, f.Key, ps) {
			return Invalid(fmt.Sprintf("prerequisites[%d].flag", i),
				"prerequisite %q would create a cycle: it depends on %q in environment %q", p.Flag, f.Key, env)
		}
	}
	return nil
}

func (f *Flag) validateTargets(ts []Target) *Error {
	owner := map[string]int{} // user key -> index of the target that lists it
	total := 0
	for i, tg := range ts {
		field := fmt.Sprintf("targets[%d]", i)
		if !hasVariation(f.Variations, tg.Variation) {
			return Invalid(field+".variation", "unknown variation %q", truncate(tg.Variation, 120))
		}
		total += len(tg.Values)
		if total > MaxTargetValues {
			return Invalid("targets", "at most %d targeted user keys per environment", MaxTargetValues)
		}
		for j, v := range tg.Values {
			vf := fmt.Sprintf("%s.values[%d]", field, j)
			if msg := validUserKey(v); msg != "" {
				return Invalid(vf, "%s", msg)
			}
			if k, dup := owner[v]; dup {
				return Invalid(vf, "user key %q is already targeted by targets[%d]", truncate(v, 120), k)
			}
			owner[v] = i
		}
	}
	return nil
}

// validUserKey returns why s cannot be a targeted user key, or "".
func validUserKey(s string) string {
	switch {
	case s == "":
		return "user key must not be empty"
	case !utf8.ValidString(s):
		return "user key is not valid UTF-8"
	case utf8.RuneCountInString(s) > MaxTargetKeyLength:
		return fmt.Sprintf("user key longer than %d characters", MaxTargetKeyLength)
	}
	return ""
}

// assignRuleIDs gives every rule without an id the next free "rule-<n>" (see ValidateTargeting).
func (f *Flag) assignRuleIDs(env string, rules []Rule) {
	next := 0
	bump := func(id string) {
		if n, ok := ruleNumber(id); ok && n > next {
			next = n
		}
	}
	if cur, ok := f.Environments[env]; ok && cur != nil {
		for _, r := range cur.Rules {
			bump(r.ID)
		}
	}
	for _, r := range rules {
		bump(r.ID)
	}
	for i := range rules {
		if rules[i].ID == "" {
			next++
			rules[i].ID = ruleIDPrefix + strconv.Itoa(next)
		}
	}
}

func ruleNumber(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, ruleIDPrefix)
	if !ok || !isNumeric(s) || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// isNumeric reports whether s is a non-empty string of ASCII digits.
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

// validateServe checks a serve; field paths are relative to it.
func validateServe(s Serve, vs []Variation) *Error {
	switch {
	case s.Variation == "" && s.Split == nil:
		return Invalid("", "serve either a variation or a split")
	case s.Variation != "" && s.Split != nil:
		return Invalid("", "serve either a variation or a split, not both")
	case s.Split == nil:
		if !hasVariation(vs, s.Variation) {
			return Invalid("variation", "unknown variation %q", truncate(s.Variation, 120))
		}
		return nil
	}
	sp := s.Split
	if sp.BucketBy != "" {
		if msg := validAttribute(sp.BucketBy); msg != "" {
			return Invalid("split.bucket_by", "%s", msg)
		}
	}
	if !utf8.ValidString(sp.Seed) || utf8.RuneCountInString(sp.Seed) > MaxSaltLength {
		return Invalid("split.seed", "seed must be valid UTF-8 of at most %d characters", MaxSaltLength)
	}
	switch n := len(sp.Variations); {
	case n == 0:
		return Invalid("split.variations", "a split needs at least 1 variation")
	case n > MaxSplitVariations:
		return Invalid("split.variations", "at most %d variations in a split, got %d", MaxSplitVariations, n)
	}
	seen := map[string]int{}
	sum := 0
	for i, w := range sp.Variations {
		field := fmt.Sprintf("split.variations[%d]", i)
		if !hasVariation(vs, w.Variation) {
			return Invalid(field+".variation", "unknown variation %q", truncate(w.Variation, 120))
		}
		if j, dup := seen[w.Variation]; dup {
			return Invalid(field+".variation", "variation %q is already in the split (split.variations[%d])", w.Variation, j)
		}
		seen[w.Variation] = i
		if w.Weight < 0 || w.Weight > BucketCount {
			return Invalid(field+".weight", "weight must be between 0 and %d, got %d", BucketCount, w.Weight)
		}
		sum += w.Weight
	}
	if sum != BucketCount {
		return Invalid("split.variations", "weights add up to %d, want %d (100%%)", sum, BucketCount)
	}
	return nil
}

// normalizeTargeting deep-copies t with empty lists instead of nil ones, so that equal targeting
// is equal as a value and encodes the same way ([] rather than null).
func normalizeTargeting(t Targeting) Targeting {
	out := Targeting{On: t.On, OffVariation: t.OffVariation, Default: cloneServe(t.Default)}
	out.Prerequisites = append([]Prerequisite{}, t.Prerequisites...)
	out.Targets = make([]Target, len(t.Targets))
	for i, tg := range t.Targets {
		out.Targets[i] = Target{Variation: tg.Variation, Values: append([]string{}, tg.Values...)}
	}
	out.Rules = make([]Rule, len(t.Rules))
	for i, r := range t.Rules {
		out.Rules[i] = Rule{ID: r.ID, Description: r.Description, Clauses: cloneClauses(r.Clauses),
			Serve: cloneServe(r.Serve)}
	}
	return out
}

func cloneClauses(cs []Clause) []Clause {
	out := make([]Clause, len(cs))
	for i, c := range cs {
		out[i] = Clause{Attribute: c.Attribute, Operator: c.Operator, Negate: c.Negate,
			Values: append([]any{}, c.Values...)}
	}
	return out
}

func cloneServe(s Serve) Serve {
	out := Serve{Variation: s.Variation}
	if s.Split != nil {
		sp := *s.Split
		sp.Variations = append([]WeightedVariation{}, s.Split.Variations...)
		out.Split = &sp
	}
	return out
}

// Toggle turns the flag on or off in environment env. Toggling to the current state returns no
// events.
func (f *Flag) Toggle(env string, on bool, cat *Catalog) ([]Event, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	if err := f.hasEnvironment(env, cat); err != nil {
		return nil, err
	}
	if f.targeting(env).On == on {
		return nil, nil
	}
	return []Event{&FlagToggled{Environment: env, On: on}}, nil
}

// Archive archives the flag: it leaves rulesets and listings but keeps its history and can be
// restored. Archiving is refused (EConflict, Details["flags"]) while a live flag has it as a
// prerequisite, and an archived flag cannot be archived again.
func (f *Flag) Archive(cat *Catalog) ([]Event, error) {
	if err := f.exists(); err != nil {
		return nil, err
	}
	if f.Archived {
		return nil, Errorf(EConflict, "flag %q is already archived", f.Key)
	}
	if deps := cat.FlagsRequiring(f.Key); len(deps) > 0 {
		return nil, &Error{Code: EConflict,
			Message: fmt.Sprintf("flag %q is a prerequisite of %s", f.Key, quoteList(deps)),
			Details: map[string]any{"flags": deps}}
	}
	return []Event{&FlagArchived{}}, nil
}

// Restore brings an archived flag back, with the configuration it had.
func (f *Flag) Restore() ([]Event, error) {
	if err := f.exists(); err != nil {
		return nil, err
	}
	if !f.Archived {
		return nil, Errorf(EConflict, "flag %q is not archived", f.Key)
	}
	return []Event{&FlagRestored{}}, nil
}

// quoteList renders keys for a message: "a", "b" and 3 more.
func quoteList(keys []string) string {
	const show = 5
	var b strings.Builder
	for i, k := range keys {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(keys)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(k))
	}
	return b.String()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Apply changes the in-memory state by one event of the flag stream and bumps Version; it is how
// commands' results are previewed. Events of other aggregates are ignored.
func (f *Flag) Apply(e Event) { f.apply(e) }

func (f *Flag) apply(e Event) bool {
	switch e := e.(type) {
	case *FlagCreated:
		f.Project, f.Key, f.Name, f.Description = e.Project, e.Key, e.Name, e.Description
		f.Tags = append([]string{}, e.Tags...)
		f.Type, f.Variations, f.Salt = e.Type, cloneVariations(e.Variations), e.Salt
		f.ClientSide, f.Defaults = e.ClientSide, e.Defaults
		f.Environments = make(map[string]*Targeting, len(e.Environments))
		for env, t := range e.Environments {
			if t != nil {
				c := normalizeTargeting(*t)
				f.Environments[env] = &c
			}
		}
	case *FlagUpdated:
		f.Name, f.Description = e.Name, e.Description
		f.Tags = append([]string{}, e.Tags...)
		f.ClientSide, f.Defaults = e.ClientSide, e.Defaults
	case *FlagVariationsUpdated:
		f.Variations = cloneVariations(e.Variations)
	case *FlagTargetingUpdated:
		if f.Environments == nil {
			f.Environments = map[string]*Targeting{}
		}
		t := normalizeTargeting(e.Targeting)
		f.Environments[e.Environment] = &t
	case *FlagToggled:
		t := f.targeting(e.Environment)
		t.On = e.On
		if f.Environments == nil {
			f.Environments = map[string]*Targeting{}
		}
		f.Environments[e.Environment] = &t
	case *FlagArchived:
		f.Archived = true
	case *FlagRestored:
		f.Archived = false
	default:
		return false
	}
	f.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (f *Flag) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(flagAggregate, r, f.Key != "", isType[*FlagCreated](e)); err != nil {
		return err
	}
	if !f.apply(e) {
		return unexpectedEvent(flagAggregate, r)
	}
	f.Version = r.Version
	f.UpdatedAt = r.OccurredAt
	if _, ok := e.(*FlagCreated); ok {
		f.CreatedAt = r.OccurredAt
	}
	return nil
}

// FoldFlag rebuilds a flag from its stream. It returns (nil, nil) for an empty stream.
func FoldFlag(events []RecordedEvent) (*Flag, error) {
	if len(events) == 0 {
		return nil, nil
	}
	f := &Flag{}
	for _, r := range events {
		if err := f.ApplyRecorded(r); err != nil {
			return nil, err
		}
	}
	return f, nil
}
