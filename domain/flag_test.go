package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestCreateFlag(t *testing.T) {
	boolFlag := func(mod func(*domain.NewFlag)) domain.NewFlag {
		in := domain.NewFlag{Project: project, Key: "dark-mode", Name: "Dark mode", Type: domain.FlagBoolean, Salt: "s1"}
		if mod != nil {
			mod(&in)
		}
		return in
	}
	stringFlag := func(mod func(*domain.NewFlag)) domain.NewFlag {
		in := domain.NewFlag{Project: project, Key: "color", Name: "Color", Type: domain.FlagString, Salt: "s1",
			Variations: []domain.Variation{{Key: "red", Value: "red"}, {Key: "green", Value: "green"}, {Key: "blue", Value: "blue"}}}
		if mod != nil {
			mod(&in)
		}
		return in
	}
	vars := func(vs ...any) []domain.Variation {
		out := make([]domain.Variation, len(vs))
		for i, v := range vs {
			out[i] = domain.Variation{Key: strs("v", len(vs))[i], Value: v}
		}
		return out
	}
	bothEnvs := func(off, on string) map[string]*domain.Targeting {
		return map[string]*domain.Targeting{"production": initial(off, on), "staging": initial(off, on)}
	}
	tests := []struct {
		name        string
		in          domain.NewFlag
		cat         *domain.Catalog
		then        []domain.Event
		code, field string
	}{
		{name: "boolean with default variations", in: boolFlag(nil),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "dark-mode", Name: "Dark mode",
				Tags: []string{}, Type: domain.FlagBoolean, Variations: domain.BooleanVariations(), Salt: "s1",
				Defaults:     domain.FlagDefaults{OnVariation: "true", OffVariation: "false"},
				Environments: bothEnvs("false", "true")}}},
		{name: "boolean with own variations picks defaults by value", in: boolFlag(func(in *domain.NewFlag) {
			in.Variations = []domain.Variation{{Key: "off", Value: false}, {Key: "on", Value: true, Name: "On"}}
			in.ClientSide = true
			in.Tags = []string{"ui", "beta", "ui"}
		}),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "dark-mode", Name: "Dark mode",
				Tags: []string{"beta", "ui"}, Type: domain.FlagBoolean, ClientSide: true, Salt: "s1",
				Variations: []domain.Variation{{Key: "off", Value: false}, {Key: "on", Value: true, Name: "On"}},
				Defaults:   domain.FlagDefaults{OnVariation: "on", OffVariation: "off"}, Environments: bothEnvs("off", "on")}}},
		{name: "string defaults to first and second variation", in: stringFlag(nil),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "color", Name: "Color", Tags: []string{},
				Type: domain.FlagString, Salt: "s1", Variations: stringFlag(nil).Variations,
				Defaults: domain.FlagDefaults{OnVariation: "red", OffVariation: "green"}, Environments: bothEnvs("green", "red")}}},
		{name: "explicit defaults, no environments yet", cat: &domain.Catalog{},
			in: stringFlag(func(in *domain.NewFlag) { in.Defaults = domain.FlagDefaults{OnVariation: "blue", OffVariation: "red"} }),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "color", Name: "Color", Tags: []string{},
				Type: domain.FlagString, Salt: "s1", Variations: stringFlag(nil).Variations,
				Defaults: domain.FlagDefaults{OnVariation: "blue", OffVariation: "red"}, Environments: map[string]*domain.Targeting{}}}},
		{name: "number flag", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagNumber; in.Variations = vars(1.5, 0.0, -3.0) }),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "color", Name: "Color", Tags: []string{},
				Type: domain.FlagNumber, Salt: "s1", Variations: vars(1.5, 0.0, -3.0),
				Defaults: domain.FlagDefaults{OnVariation: "v0", OffVariation: "v1"}, Environments: bothEnvs("v1", "v0")}}},
		{name: "json flag", in: stringFlag(func(in *domain.NewFlag) {
			in.Type = domain.FlagJSON
			in.Variations = vars(map[string]any{"a": []any{1.0, nil}}, []any{}, "s", 2.0, false, map[string]any{"a": []any{1.0, nil}})
		}),
			then: []domain.Event{&domain.FlagCreated{Project: project, Key: "color", Name: "Color", Tags: []string{},
				Type: domain.FlagJSON, Salt: "s1",
				Variations: vars(map[string]any{"a": []any{1.0, nil}}, []any{}, "s", 2.0, false, map[string]any{"a": []any{1.0, nil}}),
				Defaults:   domain.FlagDefaults{OnVariation: "v0", OffVariation: "v1"}, Environments: bothEnvs("v1", "v0")}}},

		{name: "invalid project", in: boolFlag(func(in *domain.NewFlag) { in.Project = "" }), code: domain.EInvalid, field: "project"},
		{name: "invalid key", in: boolFlag(func(in *domain.NewFlag) { in.Key = "dark mode" }), code: domain.EInvalid, field: "key"},
		{name: "key too long", in: boolFlag(func(in *domain.NewFlag) { in.Key = strings.Repeat("k", 101) }), code: domain.EInvalid, field: "key"},
		{name: "key taken", in: boolFlag(func(in *domain.NewFlag) { in.Key = "other" }), code: domain.EConflict, field: "key"},
		{name: "missing name", in: boolFlag(func(in *domain.NewFlag) { in.Name = "" }), code: domain.EInvalid, field: "name"},
		{name: "name too long", in: boolFlag(func(in *domain.NewFlag) { in.Name = strings.Repeat("é", 201) }), code: domain.EInvalid, field: "name"},
		{name: "description too long", in: boolFlag(func(in *domain.NewFlag) { in.Description = strings.Repeat("d", 2001) }),
			code: domain.EInvalid, field: "description"},
		{name: "invalid tag", in: boolFlag(func(in *domain.NewFlag) { in.Tags = []string{"ok", "not ok"} }), code: domain.EInvalid, field: "tags[1]"},
		{name: "tag too long", in: boolFlag(func(in *domain.NewFlag) { in.Tags = []string{strings.Repeat("t", 65)} }),
			code: domain.EInvalid, field: "tags[0]"},
		{name: "too many tags", in: boolFlag(func(in *domain.NewFlag) { in.Tags = strs("t", 51) }), code: domain.EInvalid, field: "tags"},
		{name: "unknown type", in: boolFlag(func(in *domain.NewFlag) { in.Type = "integer" }), code: domain.EInvalid, field: "type"},
		{name: "one variation", in: stringFlag(func(in *domain.NewFlag) { in.Variations = vars("a") }), code: domain.EInvalid, field: "variations"},
		{name: "no variations for a string flag", in: stringFlag(func(in *domain.NewFlag) { in.Variations = nil }),
			code: domain.EInvalid, field: "variations"},
		{name: "too many variations", in: stringFlag(func(in *domain.NewFlag) { in.Variations = vars(anys("x", 101)...) }),
			code: domain.EInvalid, field: "variations"},
		{name: "three boolean variations", in: boolFlag(func(in *domain.NewFlag) { in.Variations = vars(true, false, true) }),
			code: domain.EInvalid, field: "variations"},
		{name: "boolean variations not distinct", in: boolFlag(func(in *domain.NewFlag) { in.Variations = vars(true, true) }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "boolean variation of another type", in: boolFlag(func(in *domain.NewFlag) { in.Variations = vars(true, "false") }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "invalid variation key", in: stringFlag(func(in *domain.NewFlag) { in.Variations[0].Key = "" }),
			code: domain.EInvalid, field: "variations[0].key"},
		{name: "duplicate variation key", in: stringFlag(func(in *domain.NewFlag) { in.Variations[2].Key = "red" }),
			code: domain.EInvalid, field: "variations[2].key"},
		{name: "variation name too long", in: stringFlag(func(in *domain.NewFlag) { in.Variations[1].Name = strings.Repeat("n", 201) }),
			code: domain.EInvalid, field: "variations[1].name"},
		{name: "variation description too long", in: stringFlag(func(in *domain.NewFlag) { in.Variations[1].Description = strings.Repeat("n", 2001) }),
			code: domain.EInvalid, field: "variations[1].description"},
		{name: "string variation with a number", in: stringFlag(func(in *domain.NewFlag) { in.Variations[1].Value = 2.0 }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "duplicate string value", in: stringFlag(func(in *domain.NewFlag) { in.Variations[2].Value = "red" }),
			code: domain.EInvalid, field: "variations[2].value"},
		{name: "number variation with a string", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagNumber; in.Variations = vars(1.0, "2") }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "number variation with an int", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagNumber; in.Variations = vars(1.0, 2) }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "number variation not finite", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagNumber; in.Variations = vars(1.0, math.Inf(1)) }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "duplicate number value", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagNumber; in.Variations = vars(0.0, math.Copysign(0, -1)) }),
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "json variation null", in: stringFlag(func(in *domain.NewFlag) { in.Type = domain.FlagJSON; in.Variations = vars(nil, 1.0) }),
			code: domain.EInvalid, field: "variations[0].value"},
		{name: "json variation not JSON", in: stringFlag(func(in *domain.NewFlag) {
			in.Type = domain.FlagJSON
			in.Variations = vars(map[string]any{"a": map[string]int{}}, 1.0)
		}),
			code: domain.EInvalid, field: "variations[0].value"},
		{name: "json variation too large", in: stringFlag(func(in *domain.NewFlag) {
			in.Type = domain.FlagJSON
			in.Variations = vars(strings.Repeat("x", domain.MaxVariationValueBytes), 1.0)
		}),
			code: domain.EInvalid, field: "variations[0].value"},
		{name: "unknown default on variation", in: stringFlag(func(in *domain.NewFlag) { in.Defaults.OnVariation = "pink" }),
			code: domain.EInvalid, field: "defaults.on_variation"},
		{name: "unknown default off variation", in: stringFlag(func(in *domain.NewFlag) { in.Defaults.OffVariation = "pink" }),
			code: domain.EInvalid, field: "defaults.off_variation"},
		{name: "missing salt", in: boolFlag(func(in *domain.NewFlag) { in.Salt = "" }), code: domain.EInvalid, field: "salt"},
		{name: "salt too long", in: boolFlag(func(in *domain.NewFlag) { in.Salt = strings.Repeat("s", 201) }), code: domain.EInvalid, field: "salt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := tc.cat
			if cat == nil {
				cat = catalog()
				delete(cat.Flags, "color")
			}
			got, err := domain.CreateFlag(tc.in, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

// fullTargeting is a valid targeting of flag color exercising every part.
func fullTargeting() domain.Targeting {
	return domain.Targeting{
		On:            true,
		OffVariation:  "green",
		Prerequisites: []domain.Prerequisite{{Flag: "other", Variation: "true"}},
		Targets:       []domain.Target{{Variation: "blue", Values: []string{"alice", "bob"}}, {Variation: "red", Values: []string{"carol"}}},
		Rules: []domain.Rule{
			{ID: "beta-users", Description: "beta testers", Clauses: []domain.Clause{clause("", domain.OpInSegment, "beta")},
				Serve: domain.Serve{Variation: "blue"}},
			{Clauses: []domain.Clause{clause("country", domain.OpIn, "de", "fr"), clause("version", domain.OpSemverGT, "2.0")},
				Serve: domain.Serve{Split: &domain.Split{BucketBy: "company", Variations: []domain.WeightedVariation{
					{Variation: "red", Weight: 25000}, {Variation: "blue", Weight: 75000}}}}},
			{Clauses: []domain.Clause{{Attribute: "email", Operator: domain.OpExists, Negate: true}}, Serve: domain.Serve{Variation: "green"}},
		},
		Default: domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{
			{Variation: "red", Weight: 50000}, {Variation: "green", Weight: 50000}, {Variation: "blue", Weight: 0}}}},
	}
}

// normalized is fullTargeting as the domain records it: rule ids assigned, empty lists not nil.
func normalized(tg domain.Targeting, ids ...string) domain.Targeting {
	tg = clone(tg)
	for i := range tg.Rules {
		if tg.Rules[i].ID == "" {
			tg.Rules[i].ID, ids = ids[0], ids[1:]
		}
		for j := range tg.Rules[i].Clauses {
			if tg.Rules[i].Clauses[j].Values == nil {
				tg.Rules[i].Clauses[j].Values = []any{}
			}
		}
	}
	return tg
}

// clone deep-copies a targeting, so table cases can derive from a shared one.
func clone(tg domain.Targeting) domain.Targeting {
	out := tg
	out.Prerequisites = append([]domain.Prerequisite{}, tg.Prerequisites...)
	out.Targets = nil
	for _, x := range tg.Targets {
		out.Targets = append(out.Targets, domain.Target{Variation: x.Variation, Values: append([]string{}, x.Values...)})
	}
	if out.Targets == nil {
		out.Targets = []domain.Target{}
	}
	out.Rules = []domain.Rule{}
	for _, r := range tg.Rules {
		c := r
		c.Clauses = nil
		for _, cl := range r.Clauses {
			cl.Values = append([]any(nil), cl.Values...)
			c.Clauses = append(c.Clauses, cl)
		}
		c.Serve = cloneServe(r.Serve)
		out.Rules = append(out.Rules, c)
	}
	out.Default = cloneServe(tg.Default)
	return out
}

func cloneServe(s domain.Serve) domain.Serve {
	if s.Split != nil {
		sp := *s.Split
		sp.Variations = append([]domain.WeightedVariation{}, sp.Variations...)
		s.Split = &sp
	}
	return s
}

// with returns fullTargeting changed by mod.
func with(mod func(tg *domain.Targeting)) domain.Targeting {
	tg := clone(fullTargeting())
	mod(&tg)
	return tg
}

func split(ws ...any) *domain.Split {
	sp := &domain.Split{}
	for i := 0; i < len(ws); i += 2 {
		sp.Variations = append(sp.Variations, domain.WeightedVariation{Variation: ws[i].(string), Weight: ws[i+1].(int)})
	}
	return sp
}

func TestFlagCommands(t *testing.T) {
	archived := []domain.Event{colorCreated(), &domain.FlagArchived{}}
	type when func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error)
	updateTargeting := func(env string, tg domain.Targeting) when {
		return func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
			return f.UpdateTargeting(env, tg, cat)
		}
	}
	tests := []struct {
		name        string
		given       []domain.Event        // the flag's history; colorCreated() when nil
		cat         func(*domain.Catalog) // changes to the default catalog
		when        when
		then        []domain.Event
		code, field string
		msg         string // a part of the error message, where the field alone is ambiguous
	}{
		// Update
		{name: "update settings",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "Colour", Description: "d", Tags: []string{"x", "ui", "x"}, ClientSide: true,
					Defaults: domain.FlagDefaults{OffVariation: "blue"}})
			},
			then: []domain.Event{&domain.FlagUpdated{Name: "Colour", Description: "d", Tags: []string{"ui", "x"}, ClientSide: true,
				Defaults: domain.FlagDefaults{OnVariation: "red", OffVariation: "blue"}}}},
		{name: "update to the same settings is a no-op",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "Color", Tags: []string{"ui"}})
			}},
		{name: "update without name",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{})
			},
			code: domain.EInvalid, field: "name"},
		{name: "update with invalid tag",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "C", Tags: []string{"_x"}})
			},
			code: domain.EInvalid, field: "tags[0]"},
		{name: "update with unknown default",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "C", Defaults: domain.FlagDefaults{OnVariation: "pink"}})
			},
			code: domain.EInvalid, field: "defaults.on_variation"},
		{name: "update an archived flag", given: archived,
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "C"})
			},
			code: domain.EConflict},
		{name: "update a missing flag", given: []domain.Event{},
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
				return f.Update(domain.FlagSettings{Name: "C"})
			},
			code: domain.ENotFound},

		// UpdateVariations
		{name: "add a variation and rename one",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations([]domain.Variation{{Key: "red", Value: "crimson", Name: "Red"}, {Key: "green", Value: "green"},
					{Key: "blue", Value: "blue"}, {Key: "pink", Value: "pink"}}, cat)
			},
			then: []domain.Event{&domain.FlagVariationsUpdated{Variations: []domain.Variation{{Key: "red", Value: "crimson", Name: "Red"},
				{Key: "green", Value: "green"}, {Key: "blue", Value: "blue"}, {Key: "pink", Value: "pink"}}}}},
		{name: "remove an unused variation",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations[:2], cat)
			},
			then: []domain.Event{&domain.FlagVariationsUpdated{Variations: []domain.Variation{{Key: "red", Value: "red"}, {Key: "green", Value: "green"}}}}},
		{name: "same variations are a no-op",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations, cat)
			}},
		{name: "remove the default on variation",
			cat: func(c *domain.Catalog) { delete(c.Flags, "a") },
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations[1:], cat)
			},
			code: domain.EInvalid, field: "variations", msg: "defaults.on_variation"},
		{name: "remove a variation served by a rule",
			given: []domain.Event{colorCreated(), &domain.FlagTargetingUpdated{Environment: "staging", Targeting: fullTargeting()}},
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations[:2], cat)
			},
			code: domain.EInvalid, field: "variations", msg: `environment "staging" (targets[0])`},
		{name: "remove a variation a live flag requires",
			given: []domain.Event{colorCreated(), &domain.FlagUpdated{Name: "Color", Defaults: domain.FlagDefaults{OnVariation: "blue", OffVariation: "green"}},
				&domain.FlagTargetingUpdated{Environment: "production", Targeting: *initial("green", "blue")},
				&domain.FlagTargetingUpdated{Environment: "staging", Targeting: *initial("green", "blue")}},
			msg: `a prerequisite of flag "a" in environment "production"`,
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations[1:], cat)
			},
			code: domain.EInvalid, field: "variations"},
		{name: "remove a variation only an archived flag requires",
			given: []domain.Event{colorCreated(), &domain.FlagUpdated{Name: "Color", Defaults: domain.FlagDefaults{OnVariation: "blue", OffVariation: "green"}},
				&domain.FlagTargetingUpdated{Environment: "production", Targeting: *initial("green", "blue")},
				&domain.FlagTargetingUpdated{Environment: "staging", Targeting: *initial("green", "blue")}},
			cat: func(c *domain.Catalog) {
				a := c.Flags["a"]
				a.Archived = true
				c.Flags["a"] = a
			},
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations[1:], cat)
			},
			then: []domain.Event{&domain.FlagVariationsUpdated{Variations: []domain.Variation{{Key: "green", Value: "green"}, {Key: "blue", Value: "blue"}}}}},
		{name: "variation of the wrong type",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations([]domain.Variation{{Key: "red", Value: "red"}, {Key: "green", Value: true}, {Key: "blue", Value: "blue"}}, cat)
			},
			code: domain.EInvalid, field: "variations[1].value"},
		{name: "a third boolean variation", given: []domain.Event{boolCreated("x")},
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(append(f.Variations, domain.Variation{Key: "maybe", Value: true}), cat)
			},
			code: domain.EInvalid, field: "variations"},
		{name: "update variations of an archived flag", given: archived,
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(f.Variations, cat)
			},
			code: domain.EConflict},

		// UpdateTargeting: valid
		{name: "targeting with every part; rule ids assigned", when: updateTargeting("production", fullTargeting()),
			then: []domain.Event{&domain.FlagTargetingUpdated{Environment: "production", Targeting: normalized(fullTargeting(), "rule-1", "rule-2")}}},
		{name: "new rule ids continue after the highest in use",
			given: []domain.Event{colorCreated(), &domain.FlagTargetingUpdated{Environment: "production",
				Targeting: with(func(tg *domain.Targeting) { tg.Rules[1].ID = "rule-7"; tg.Rules[2].ID = "x" })}},
			when: updateTargeting("production", with(func(tg *domain.Targeting) {
				tg.Rules[0].ID = "rule-2"
				tg.Rules[0].Clauses[0].Values = nil
				tg.Rules[0].Clauses[0] = clause("key", domain.OpEquals, "dave")
			})),
			then: []domain.Event{&domain.FlagTargetingUpdated{Environment: "production",
				Targeting: normalized(with(func(tg *domain.Targeting) {
					tg.Rules[0].ID = "rule-2"
					tg.Rules[0].Clauses[0] = clause("key", domain.OpEquals, "dave")
				}), "rule-8", "rule-9")}}},
		{name: "same targeting is a no-op",
			given: []domain.Event{colorCreated(), &domain.FlagTargetingUpdated{Environment: "production", Targeting: normalized(fullTargeting(), "rule-1", "rule-2")}},
			when:  updateTargeting("production", normalized(fullTargeting(), "rule-1", "rule-2"))},
		{name: "environment created after the flag", cat: func(c *domain.Catalog) { c.Environments = append(c.Environments, "qa") },
			when: updateTargeting("qa", domain.Targeting{OffVariation: "red", Default: domain.Serve{Variation: "blue"}}),
			then: []domain.Event{&domain.FlagTargetingUpdated{Environment: "qa", Targeting: *initial("red", "blue")}}},
		{name: "prerequisite cycles are per environment", when: updateTargeting("staging", with(func(tg *domain.Targeting) {
			tg.Prerequisites = []domain.Prerequisite{{Flag: "b", Variation: "true"}}
		})),
			then: []domain.Event{&domain.FlagTargetingUpdated{Environment: "staging", Targeting: normalized(with(func(tg *domain.Targeting) {
				tg.Prerequisites = []domain.Prerequisite{{Flag: "b", Variation: "true"}}
			}), "rule-1", "rule-2")}}},

		// UpdateTargeting: refused
		{name: "targeting of an unknown environment", when: updateTargeting("qa", fullTargeting()), code: domain.ENotFound, field: "environment"},
		{name: "targeting of an archived flag", given: archived, when: updateTargeting("production", fullTargeting()), code: domain.EConflict},
		{name: "missing off variation", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.OffVariation = "" })),
			code: domain.EInvalid, field: "targeting.off_variation"},
		{name: "unknown off variation", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.OffVariation = "pink" })),
			code: domain.EInvalid, field: "targeting.off_variation"},
		{name: "prerequisite on an unknown flag", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites = append(tg.Prerequisites, domain.Prerequisite{Flag: "ghost", Variation: "true"})
		})), code: domain.EInvalid, field: "targeting.prerequisites[1].flag"},
		{name: "prerequisite on itself", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites[0] = domain.Prerequisite{Flag: "color", Variation: "red"}
		})), code: domain.EInvalid, field: "targeting.prerequisites[0].flag"},
		{name: "prerequisite on an archived flag", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites[0] = domain.Prerequisite{Flag: "retired", Variation: "true"}
		})), code: domain.EInvalid, field: "targeting.prerequisites[0].flag"},
		{name: "prerequisite listed twice", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites = append(tg.Prerequisites, domain.Prerequisite{Flag: "other", Variation: "false"})
		})), code: domain.EInvalid, field: "targeting.prerequisites[1].flag"},
		{name: "prerequisite on an unknown variation", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites[0].Variation = "maybe"
		})), code: domain.EInvalid, field: "targeting.prerequisites[0].variation"},
		{name: "prerequisite cycle", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites = append(tg.Prerequisites, domain.Prerequisite{Flag: "a", Variation: "true"})
		})), code: domain.EInvalid, field: "targeting.prerequisites[1].flag"},
		{name: "prerequisite cycle through two flags", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites = []domain.Prerequisite{{Flag: "b", Variation: "false"}}
		})), code: domain.EInvalid, field: "targeting.prerequisites[0].flag"},
		{name: "too many prerequisites", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Prerequisites = make([]domain.Prerequisite, domain.MaxPrerequisites+1)
		})), code: domain.EInvalid, field: "targeting.prerequisites"},
		{name: "target of an unknown variation", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Targets[1].Variation = "pink"
		})), code: domain.EInvalid, field: "targeting.targets[1].variation"},
		{name: "empty target user key", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Targets[0].Values[1] = ""
		})), code: domain.EInvalid, field: "targeting.targets[0].values[1]"},
		{name: "user key in two targets", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Targets[1].Values = append(tg.Targets[1].Values, "bob")
		})), code: domain.EInvalid, field: "targeting.targets[1].values[1]"},
		{name: "user key twice in one target", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Targets[0].Values = append(tg.Targets[0].Values, "alice")
		})), code: domain.EInvalid, field: "targeting.targets[0].values[2]"},
		{name: "too many targeted users", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Targets[1].Values = strs("u", domain.MaxTargetValues)
		})), code: domain.EInvalid, field: "targeting.targets"},
		{name: "too many rules", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			for len(tg.Rules) <= domain.MaxRules {
				tg.Rules = append(tg.Rules, domain.Rule{Clauses: tg.Rules[2].Clauses, Serve: tg.Rules[2].Serve})
			}
		})), code: domain.EInvalid, field: "targeting.rules"},
		{name: "duplicate rule id", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.Rules[2].ID = "beta-users" })),
			code: domain.EInvalid, field: "targeting.rules[2].id"},
		{name: "invalid rule id", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.Rules[1].ID = "rule 1" })),
			code: domain.EInvalid, field: "targeting.rules[1].id"},
		{name: "rule description too long", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[1].Description = strings.Repeat("d", 2001)
		})), code: domain.EInvalid, field: "targeting.rules[1].description"},
		{name: "rule without clauses", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.Rules[0].Clauses = nil })),
			code: domain.EInvalid, field: "targeting.rules[0].clauses"},
		{name: "rule with too many clauses", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			for len(tg.Rules[0].Clauses) <= domain.MaxClausesPerRule {
				tg.Rules[0].Clauses = append(tg.Rules[0].Clauses, clause("a", domain.OpExists))
			}
		})), code: domain.EInvalid, field: "targeting.rules[0].clauses"},
		{name: "invalid clause value", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[1].Clauses[1].Values = []any{"2.0", "two"}
		})), code: domain.EInvalid, field: "targeting.rules[1].clauses[1].values[1]"},
		{name: "clause on an archived segment", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[0].Clauses[0].Values = []any{"beta", "old"}
		})), code: domain.EInvalid, field: "targeting.rules[0].clauses[0].values[1]"},
		{name: "rule serving nothing", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.Rules[0].Serve = domain.Serve{} })),
			code: domain.EInvalid, field: "targeting.rules[0].serve"},
		{name: "rule serving a variation and a split", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[1].Serve.Variation = "red"
		})), code: domain.EInvalid, field: "targeting.rules[1].serve"},
		{name: "rule serving an unknown variation", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[0].Serve.Variation = "pink"
		})), code: domain.EInvalid, field: "targeting.rules[0].serve.variation"},
		{name: "default serving nothing", when: updateTargeting("production", with(func(tg *domain.Targeting) { tg.Default = domain.Serve{} })),
			code: domain.EInvalid, field: "targeting.default"},
		{name: "default serving an unknown variation", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default = domain.Serve{Variation: "pink"}
		})), code: domain.EInvalid, field: "targeting.default.variation"},
		{name: "split weights not adding up", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = split("red", 50000, "green", 49999)
		})), code: domain.EInvalid, field: "targeting.default.split.variations"},
		{name: "split without variations", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = split()
		})), code: domain.EInvalid, field: "targeting.default.split.variations"},
		{name: "split with too many variations", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = &domain.Split{Variations: make([]domain.WeightedVariation, domain.MaxSplitVariations+1)}
		})), code: domain.EInvalid, field: "targeting.default.split.variations"},
		{name: "split of an unknown variation", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = split("red", 50000, "pink", 50000)
		})), code: domain.EInvalid, field: "targeting.default.split.variations[1].variation"},
		{name: "split with a variation twice", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = split("red", 50000, "red", 50000)
		})), code: domain.EInvalid, field: "targeting.default.split.variations[1].variation"},
		{name: "split with a negative weight", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[1].Serve.Split = split("red", 100001, "green", -1)
		})), code: domain.EInvalid, field: "targeting.rules[1].serve.split.variations[0].weight"},
		{name: "split with a weight over 100%", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split = split("red", 0, "green", 200000)
		})), code: domain.EInvalid, field: "targeting.default.split.variations[1].weight"},
		{name: "split by a blank attribute", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split.BucketBy = "  "
		})), code: domain.EInvalid, field: "targeting.default.split.bucket_by"},
		{name: "split by an attribute too long", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Rules[1].Serve.Split.BucketBy = strings.Repeat("a", 201)
		})), code: domain.EInvalid, field: "targeting.rules[1].serve.split.bucket_by"},
		{name: "split seed too long", when: updateTargeting("production", with(func(tg *domain.Targeting) {
			tg.Default.Split.Seed = strings.Repeat("a", 201)
		})), code: domain.EInvalid, field: "targeting.default.split.seed"},

		// Toggle
		{name: "turn on",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.Toggle("production", true, cat)
			},
			then: []domain.Event{&domain.FlagToggled{Environment: "production", On: true}}},
		{name: "turn off what is off is a no-op",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.Toggle("production", false, cat)
			}},
		{name: "turn on what is on is a no-op",
			given: []domain.Event{colorCreated(), &domain.FlagToggled{Environment: "staging", On: true}},
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.Toggle("staging", true, cat)
			}},
		{name: "turn on in an environment created after the flag", cat: func(c *domain.Catalog) { c.Environments = append(c.Environments, "qa") },
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) { return f.Toggle("qa", true, cat) },
			then: []domain.Event{&domain.FlagToggled{Environment: "qa", On: true}}},
		{name: "toggle in an unknown environment",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) { return f.Toggle("qa", true, cat) },
			code: domain.ENotFound, field: "environment"},
		{name: "toggle an archived flag", given: archived,
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.Toggle("production", true, cat)
			},
			code: domain.EConflict},

		// Archive, Restore
		{name: "archive", cat: func(c *domain.Catalog) { delete(c.Flags, "a") },
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) { return f.Archive(cat) },
			then: []domain.Event{&domain.FlagArchived{}}},
		{name: "archive a prerequisite of a live flag",
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) { return f.Archive(cat) },
			code: domain.EConflict},
		{name: "archive twice", given: archived,
			when: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) { return f.Archive(cat) },
			code: domain.EConflict},
		{name: "restore", given: archived,
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) { return f.Restore() },
			then: []domain.Event{&domain.FlagRestored{}}},
		{name: "restore a live flag",
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) { return f.Restore() },
			code: domain.EConflict},
		{name: "restore a missing flag", given: []domain.Event{},
			when: func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) { return f.Restore() },
			code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.given
			if given == nil {
				given = []domain.Event{colorCreated()}
			}
			cat := catalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			f := foldFlag(t, given...)
			var snapshot string
			if f != nil {
				snapshot = eventsJSON(t, []domain.Event{&domain.FlagCreated{Key: f.Key, Variations: f.Variations, Environments: f.Environments}})
			}
			got, err := tc.when(f, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
			if f != nil {
				if f.Version != int64(len(given)) || snapshot != eventsJSON(t, []domain.Event{&domain.FlagCreated{Key: f.Key, Variations: f.Variations, Environments: f.Environments}}) {
					t.Fatalf("the command mutated the flag")
				}
				// Applying the events must succeed and reach the version the store would give.
				for _, e := range got {
					f.Apply(e)
				}
				if f.Version != int64(len(given)+len(got)) {
					t.Fatalf("version after apply %d", f.Version)
				}
			}
		})
	}
}

func TestFoldFlag(t *testing.T) {
	tg := normalized(fullTargeting(), "rule-1", "rule-2")
	history := []domain.Event{
		colorCreated(),
		&domain.FlagUpdated{Name: "Colour", Tags: []string{"ui", "x"}, ClientSide: true, Defaults: domain.FlagDefaults{OnVariation: "blue", OffVariation: "green"}},
		&domain.FlagVariationsUpdated{Variations: []domain.Variation{{Key: "red", Value: "crimson"}, {Key: "green", Value: "green"}, {Key: "blue", Value: "blue"}}},
		&domain.FlagTargetingUpdated{Environment: "production", Targeting: tg},
		&domain.FlagToggled{Environment: "staging", On: true},
		&domain.FlagToggled{Environment: "qa", On: true}, // an environment created after the flag
		&domain.FlagArchived{},
		&domain.FlagRestored{},
	}
	f, err := domain.FoldFlag(record(t, "flag/acme/color", history...))
	if err != nil {
		t.Fatal(err)
	}
	if f.Key != "color" || f.Project != project || f.Name != "Colour" || !f.ClientSide || f.Archived || f.Salt != "salt-color" {
		t.Errorf("settings: %+v", f)
	}
	if f.Version != 8 || !f.CreatedAt.Equal(t0) || !f.UpdatedAt.Equal(t0.Add(7*60e9)) {
		t.Errorf("version %d created %v updated %v", f.Version, f.CreatedAt, f.UpdatedAt)
	}
	if v := f.Variation("red"); v == nil || v.Value != "crimson" {
		t.Errorf("variation red: %+v", v)
	}
	if got, want := eventsJSON(t, []domain.Event{&domain.FlagTargetingUpdated{Targeting: *f.Environments["production"]}}),
		eventsJSON(t, []domain.Event{&domain.FlagTargetingUpdated{Targeting: tg}}); got != want {
		t.Errorf("production targeting\n got %s\nwant %s", got, want)
	}
	if s := f.Environments["staging"]; !s.On || s.OffVariation != "green" || s.Default.Variation != "red" {
		t.Errorf("staging: %+v", s)
	}
	// qa starts from the defaults in force when it was first configured.
	if q := f.Environments["qa"]; q == nil || !q.On || q.OffVariation != "green" || q.Default.Variation != "blue" {
		t.Errorf("qa: %+v", q)
	}
	if c := f.ConfigFor("production"); c.Version != 8 || !c.Targeting.On {
		t.Errorf("config: %+v", c)
	}

	if f, err := domain.FoldFlag(nil); f != nil || err != nil {
		t.Fatalf("empty stream: %v %v", f, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "flag/acme/color", &domain.FlagArchived{}),
		"event of another aggregate": record(t, "flag/acme/color", colorCreated(), &domain.SegmentArchived{}),
		"undecodable":                {{Version: 1, Type: "FlagCreated", Data: []byte(`{"variations":{}}`)}},
	} {
		if _, err := domain.FoldFlag(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}

// TestFlagStateDoesNotAliasEvents: the folded state must not share slices or maps with the events
// it was built from (commands return events that callers may keep and re-use).
func TestFlagStateDoesNotAliasEvents(t *testing.T) {
	ev := &domain.FlagTargetingUpdated{Environment: "production", Targeting: normalized(fullTargeting(), "r1", "r2")}
	f := foldFlag(t, colorCreated())
	f.Apply(ev)
	ev.Targeting.Rules[0].Clauses[0].Values[0] = "changed"
	ev.Targeting.Default.Split.Variations[0].Weight = 1
	if got := f.Environments["production"].Rules[0].Clauses[0].Values[0]; got != "beta" {
		t.Errorf("state aliases the event: %v", got)
	}
	if got := f.Environments["production"].Default.Split.Variations[0].Weight; got != 50000 {
		t.Errorf("state aliases the event's split: %v", got)
	}
}

// FuzzValidateTargeting feeds arbitrary JSON to the targeting decoder and validator: it must never
// panic, must only return EInvalid errors with a field, and a valid targeting must come back from
// a JSON round trip unchanged, validate again to itself, and be what UpdateTargeting records.
func FuzzValidateTargeting(f *testing.F) {
	full, err := json.Marshal(fullTargeting())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(full),
		`{"off_variation":"green","default":{"variation":"red"}}`,
		`{"on":true,"off_variation":"green","rules":[{"clauses":[{"attribute":"a","op":"lt","values":[3]}],"serve":{"variation":"blue"}}],"default":{"split":{"variations":[{"variation":"red","weight":100000}]}}}`,
		`{"off_variation":"green","targets":[{"variation":"red","values":["a","a"]}],"default":{"variation":"red"}}`,
		`{"off_variation":"green","prerequisites":[{"flag":"a","variation":"true"}],"default":{"variation":"red"}}`,
		`{"off_variation":"green","default":{"variation":"red","split":{"variations":[]}}}`,
		`{"rules":[{"id":"","clauses":null}]}`,
	} {
		f.Add([]byte(seed))
	}
	cat := catalog()
	flag := foldFlag(f, colorCreated(), &domain.FlagTargetingUpdated{Environment: "production",
		Targeting: normalized(fullTargeting(), "rule-3", "rule-4")})
	f.Fuzz(func(t *testing.T, data []byte) {
		var tg domain.Targeting
		if json.Unmarshal(data, &tg) != nil {
			return
		}
		out, err := flag.ValidateTargeting("production", tg, cat)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field == "" {
				t.Fatalf("want an EInvalid *Error with a field, got %#v", err)
			}
			return
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatalf("valid targeting does not encode: %v", err)
		}
		var back domain.Targeting
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("valid targeting does not decode: %v", err)
		}
		if !reflect.DeepEqual(out, back) {
			t.Fatalf("round trip changed the targeting\n  %#v\n  %#v", out, back)
		}
		again, err := flag.ValidateTargeting("production", back, cat)
		if err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("validating a validated targeting changed it (%v)\n  %#v\n  %#v", err, out, again)
		}
		evs, err := flag.UpdateTargeting("production", tg, cat)
		if err != nil {
			t.Fatalf("UpdateTargeting refused what ValidateTargeting accepted: %v", err)
		}
		if len(evs) == 1 && !reflect.DeepEqual(evs[0].(*domain.FlagTargetingUpdated).Targeting, out) {
			t.Fatalf("UpdateTargeting records another targeting than ValidateTargeting returns")
		}
	})
}
