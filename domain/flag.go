package domain

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
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
	return slices.ContainsFunc(vs, func(v Variation) bool { return v.Key == key })
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
	if s.Name == f.Name && s.Description == f.Description && slices.Equal(tags, f.Tags) &&
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
	for _, env := range slices.Sorted(maps.Keys(f.Environments)) {
		t := f.Environments[env]
		if t == nil {
			continue
		}
		if where := targetingUse(*t, key); where != "" {
			return fmt.Sprintf("the targeting of environment %q (%s)", env, where)
		}
	}
	if cat != nil {
		for _, other := range slices.Sorted(maps.Keys(cat.Flags)) {
			fi := cat.Flags[other]
			if other == f.Key || fi.Archived {
				continue
			}
			for _, env := range slices.Sorted(maps.Keys(fi.Prerequisites)) {
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
		return slices.ContainsFunc(s.Split.Variations, func(w WeightedVariation) bool { return w.Variation == key })
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
