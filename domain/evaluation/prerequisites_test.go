package evaluation_test

import (
	"fmt"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

func requires(f *domain.FlagConfig, flag, variation string) *domain.FlagConfig {
	f.Targeting.Prerequisites = append(f.Targeting.Prerequisites, domain.Prerequisite{Flag: flag, Variation: variation})
	return f
}

func TestPrerequisites(t *testing.T) {
	on := func(key string) *domain.FlagConfig { // serves "on" by default
		f := boolFlag(key)
		f.Targeting.Default = domain.Serve{Variation: "on"}
		return f
	}
	off := func(f *domain.FlagConfig) *domain.FlagConfig { f.Targeting.On = false; return f }
	tests := []struct {
		name  string
		flags []*domain.FlagConfig
		key   string
		want  want
	}{
		{"met", []*domain.FlagConfig{requires(on("f"), "p", "on"), on("p")}, "u", want{"on", evaluation.ReasonDefault, "", -1}},
		{"wrong variation", []*domain.FlagConfig{requires(on("f"), "p", "off"), on("p")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"prerequisite off", []*domain.FlagConfig{requires(on("f"), "p", "on"), off(on("p"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"prerequisite off, off variation required: still not met", []*domain.FlagConfig{requires(on("f"), "p", "off"), off(on("p"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"missing prerequisite flag", []*domain.FlagConfig{requires(on("f"), "nope", "on")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"unknown required variation", []*domain.FlagConfig{requires(on("f"), "p", "maybe"), on("p")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"all must be met", []*domain.FlagConfig{requires(requires(on("f"), "p", "on"), "q", "on"), on("p"), off(on("q"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"both met", []*domain.FlagConfig{requires(requires(on("f"), "p", "on"), "q", "on"), on("p"), on("q")}, "u", want{"on", evaluation.ReasonDefault, "", -1}},
		{"off beats prerequisites", []*domain.FlagConfig{off(requires(on("f"), "nope", "on"))}, "u", want{"off", evaluation.ReasonDisabled, "", -1}},
		{"prerequisites before targets", []*domain.FlagConfig{func() *domain.FlagConfig {
			f := requires(on("f"), "nope", "on")
			f.Targeting.Targets = []domain.Target{{Variation: "on", Values: []string{"u"}}}
			return f
		}()}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"chain met", []*domain.FlagConfig{requires(on("f"), "p", "on"), requires(on("p"), "q", "on"), on("q")}, "u", want{"on", evaluation.ReasonDefault, "", -1}},
		{"chain broken deep down", []*domain.FlagConfig{requires(on("f"), "p", "on"), requires(on("p"), "q", "on"), off(on("q"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"transitive: p's prerequisite fails though p's off variation is required", []*domain.FlagConfig{requires(on("f"), "p", "off"), requires(on("p"), "q", "on"), off(on("q"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"prerequisite evaluated with the same context", []*domain.FlagConfig{requires(on("f"), "p", "on"), func() *domain.FlagConfig {
			p := boolFlag("p")
			p.Targeting.Targets = []domain.Target{{Variation: "on", Values: []string{"vip"}}}
			return p
		}()}, "vip", want{"on", evaluation.ReasonDefault, "", -1}},
		{"same context, other user", []*domain.FlagConfig{requires(on("f"), "p", "on"), func() *domain.FlagConfig {
			p := boolFlag("p")
			p.Targeting.Targets = []domain.Target{{Variation: "on", Values: []string{"vip"}}}
			return p
		}()}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"prerequisite erroring is not met", []*domain.FlagConfig{requires(on("f"), "p", "on"), func() *domain.FlagConfig {
			p := boolFlag("p")
			p.Targeting.Default = domain.Serve{Split: split("", "on", 100000)}
			return p
		}()}, "", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"prerequisite served by a split", []*domain.FlagConfig{requires(on("f"), "p", "on"), func() *domain.FlagConfig {
			p := boolFlag("p")
			p.Targeting.Default = domain.Serve{Split: split("", "on", 100000)}
			return p
		}()}, "u", want{"on", evaluation.ReasonDefault, "", -1}},
		{"self cycle", []*domain.FlagConfig{requires(on("f"), "f", "on")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"two-flag cycle", []*domain.FlagConfig{requires(on("f"), "p", "on"), requires(on("p"), "f", "on")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"leads into a cycle", []*domain.FlagConfig{requires(on("f"), "p", "on"), requires(on("p"), "q", "on"), requires(on("q"), "p", "on")}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
		{"cycle through an off flag", []*domain.FlagConfig{requires(on("f"), "p", "on"), off(requires(on("p"), "f", "on"))}, "u", want{"off", evaluation.ReasonPrerequisiteFailed, "", -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCompile(t, ruleset(tc.flags))
			check(t, c.Evaluate("f", &evaluation.Context{Key: tc.key}), tc.want)
		})
	}
}

// chain returns flags f00 -> f01 -> ... -> f<n>, each requiring the next to serve "on".
func chain(n int) []*domain.FlagConfig {
	var flags []*domain.FlagConfig
	for i := 0; i <= n; i++ {
		f := boolFlag(fmt.Sprintf("f%02d", i))
		f.Targeting.Default = domain.Serve{Variation: "on"}
		if i < n {
			requires(f, fmt.Sprintf("f%02d", i+1), "on")
		}
		flags = append(flags, f)
	}
	return flags
}

func TestPrerequisiteDepth(t *testing.T) {
	c := mustCompileClean(t, ruleset(chain(evaluation.MaxPrerequisiteDepth)))
	check(t, c.Evaluate("f00", nil), want{"on", evaluation.ReasonDefault, "", -1})
	c = mustCompileClean(t, ruleset(chain(evaluation.MaxPrerequisiteDepth+1)))
	check(t, c.Evaluate("f00", nil), want{"off", evaluation.ReasonPrerequisiteFailed, "", -1})
	check(t, c.Evaluate("f01", nil), want{"on", evaluation.ReasonDefault, "", -1})
}

func TestPrerequisiteFanOutIsBounded(t *testing.T) {
	// Each level requires the next level's two flags: 2^15 evaluations without the bound.
	var flags []*domain.FlagConfig
	for lvl := 0; lvl < 15; lvl++ {
		for _, side := range []string{"a", "b"} {
			f := boolFlag(fmt.Sprintf("l%02d%s", lvl, side))
			f.Targeting.Default = domain.Serve{Variation: "on"}
			if lvl < 14 {
				requires(requires(f, fmt.Sprintf("l%02da", lvl+1), "on"), fmt.Sprintf("l%02db", lvl+1), "on")
			}
			flags = append(flags, f)
		}
	}
	c := mustCompileClean(t, ruleset(flags))
	check(t, c.Evaluate("l00a", nil), want{"off", evaluation.ReasonPrerequisiteFailed, "", -1})
	check(t, c.Evaluate("l10a", nil), want{"on", evaluation.ReasonDefault, "", -1}) // 2^4-1 evaluations
}
