package domain

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

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
