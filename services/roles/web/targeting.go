package web

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vexil-flags/vexil/domain"
)

// The targeting editor is a plain HTML form whose field names are the API's field paths
// (rules[0].clauses[1].values, default.split.<variation>), so a validation error of the domain,
// which names such a path, is shown at the input it names. The form round-trips a draft: the
// editing actions (add a rule or clause, remove, move) are submit buttons handled on the server,
// so the editor works from the keyboard and without script; the console's script adds drag to
// reorder rules and the live sum of split weights.

// serveDraft is a serve as typed: a variation, or a split in percent per variation.
type serveDraft struct {
	Kind      string            // "variation" or "split"
	Variation string            // when Kind is variation
	Weights   map[string]string // variation -> percent as typed, when Kind is split
	BucketBy  string
}

type clauseDraft struct {
	Attribute string
	Op        string
	Values    string   // one value a line
	Segments  []string // for in_segment
	Negate    bool
}

type ruleDraft struct {
	ID, Description string
	Clauses         []clauseDraft
	Serve           serveDraft
}

type prerequisiteDraft struct{ Flag, Variation string }

// targetingDraft is the editor's state.
type targetingDraft struct {
	On            bool
	OffVariation  string
	Targets       map[string]string // variation -> user keys, one a line
	Prerequisites []prerequisiteDraft
	Rules         []ruleDraft
	Default       serveDraft
}

// draftOf renders a flag's targeting for the editor.
func draftOf(t domain.Targeting) targetingDraft {
	d := targetingDraft{On: t.On, OffVariation: t.OffVariation, Targets: map[string]string{}, Default: serveDraftOf(t.Default)}
	for _, tg := range t.Targets {
		d.Targets[tg.Variation] = strings.Join(tg.Values, "\n")
	}
	for _, p := range t.Prerequisites {
		d.Prerequisites = append(d.Prerequisites, prerequisiteDraft{Flag: p.Flag, Variation: p.Variation})
	}
	for _, r := range t.Rules {
		rd := ruleDraft{ID: r.ID, Description: r.Description, Serve: serveDraftOf(r.Serve)}
		for _, c := range r.Clauses {
			cd := clauseDraft{Attribute: c.Attribute, Op: string(c.Operator), Negate: c.Negate}
			if c.Operator == domain.OpInSegment {
				for _, v := range c.Values {
					cd.Segments = append(cd.Segments, fmt.Sprint(v))
				}
			} else {
				lines := make([]string, len(c.Values))
				for i, v := range c.Values {
					lines[i] = valueText(v)
				}
				cd.Values = strings.Join(lines, "\n")
			}
			rd.Clauses = append(rd.Clauses, cd)
		}
		d.Rules = append(d.Rules, rd)
	}
	return d
}

// valueText shows a clause value: a string that would read as a number or boolean is quoted, so it
// reads back as the same string.
func valueText(v any) string {
	if s, ok := v.(string); ok {
		if _, isScalar := scalarOf(s); isScalar {
			return strconv.Quote(s)
		}
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// scalarOf reads a line typed as a number or a boolean.
func scalarOf(s string) (any, bool) {
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && numberLike.MatchString(s) {
		return f, true
	}
	return nil, false
}

var numberLike = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

func serveDraftOf(s domain.Serve) serveDraft {
	if s.Split == nil {
		return serveDraft{Kind: "variation", Variation: s.Variation, Weights: map[string]string{}}
	}
	d := serveDraft{Kind: "split", Weights: map[string]string{}, BucketBy: s.Split.BucketBy}
	for _, w := range s.Split.Variations {
		d.Weights[w.Variation] = percentText(w.Weight)
	}
	return d
}

// percentText shows a weight (in BucketCount units) as a percent, without trailing zeros.
func percentText(weight int) string {
	return strconv.FormatFloat(float64(weight)*100/domain.BucketCount, 'f', -1, 64)
}

// parseDraft reads the editor's form. Rules come in the order of their rules[i].position fields
// (the script's drag and drop rewrites them), else in index order.
func parseDraft(form url.Values, variations []domain.Variation) targetingDraft {
	d := targetingDraft{On: form.Get("on") == "true", OffVariation: form.Get("off_variation"), Targets: map[string]string{}}
	for _, v := range variations {
		if s := strings.TrimSpace(form.Get("targets." + v.Key)); s != "" {
			d.Targets[v.Key] = s
		}
	}
	for i := 0; form.Has(fmt.Sprintf("prerequisites[%d].flag", i)); i++ {
		p := prerequisiteDraft{Flag: form.Get(fmt.Sprintf("prerequisites[%d].flag", i)), Variation: strings.TrimSpace(form.Get(fmt.Sprintf("prerequisites[%d].variation", i)))}
		if p.Flag != "" {
			d.Prerequisites = append(d.Prerequisites, p)
		}
	}
	type positioned struct {
		pos float64
		r   ruleDraft
	}
	var rules []positioned
	for i := 0; form.Has(fmt.Sprintf("rules[%d].id", i)); i++ {
		f := func(name string) string { return form.Get(fmt.Sprintf("rules[%d].%s", i, name)) }
		r := ruleDraft{ID: f("id"), Description: strings.TrimSpace(f("description")), Serve: parseServe(form, fmt.Sprintf("rules[%d].serve", i), variations)}
		for j := 0; form.Has(fmt.Sprintf("rules[%d].clauses[%d].op", i, j)); j++ {
			g := func(name string) string { return f(fmt.Sprintf("clauses[%d].%s", j, name)) }
			r.Clauses = append(r.Clauses, clauseDraft{Attribute: strings.TrimSpace(g("attribute")), Op: g("op"), Values: g("values"),
				Segments: form[fmt.Sprintf("rules[%d].clauses[%d].segments", i, j)], Negate: g("negate") == "true"})
		}
		pos, err := strconv.ParseFloat(f("position"), 64)
		if err != nil {
			pos = float64(i)
		}
		rules = append(rules, positioned{pos: pos, r: r})
	}
	sort.SliceStable(rules, func(a, b int) bool { return rules[a].pos < rules[b].pos })
	for _, r := range rules {
		d.Rules = append(d.Rules, r.r)
	}
	d.Default = parseServe(form, "default", variations)
	return d
}

func parseServe(form url.Values, prefix string, variations []domain.Variation) serveDraft {
	s := serveDraft{Kind: form.Get(prefix + ".kind"), Variation: form.Get(prefix + ".variation"), Weights: map[string]string{},
		BucketBy: strings.TrimSpace(form.Get(prefix + ".split.bucket_by"))}
	if s.Kind != "split" {
		s.Kind = "variation"
	}
	for _, v := range variations {
		s.Weights[v.Key] = strings.TrimSpace(form.Get(prefix + ".split." + v.Key))
	}
	return s
}

// apply runs an editing action of the form on the draft; it reports whether the action was one.
func (d *targetingDraft) apply(action string) bool {
	parts := strings.Split(action, ":")
	idx := func(k int) int {
		if len(parts) <= k {
			return -1
		}
		n, err := strconv.Atoi(parts[k])
		if err != nil {
			return -1
		}
		return n
	}
	i, j := idx(1), idx(2)
	inRules := i >= 0 && i < len(d.Rules)
	switch parts[0] {
	case "add-rule":
		d.Rules = append(d.Rules, ruleDraft{Clauses: []clauseDraft{{Op: string(domain.OpEquals)}}, Serve: serveDraft{Kind: "variation", Weights: map[string]string{}}})
	case "add-prerequisite":
		d.Prerequisites = append(d.Prerequisites, prerequisiteDraft{})
	case "remove-rule":
		if inRules {
			d.Rules = slices.Delete(d.Rules, i, i+1)
		}
	case "up":
		if inRules && i > 0 {
			d.Rules[i-1], d.Rules[i] = d.Rules[i], d.Rules[i-1]
		}
	case "down":
		if inRules && i+1 < len(d.Rules) {
			d.Rules[i+1], d.Rules[i] = d.Rules[i], d.Rules[i+1]
		}
	case "add-clause":
		if inRules {
			d.Rules[i].Clauses = append(d.Rules[i].Clauses, clauseDraft{Op: string(domain.OpEquals)})
		}
	case "remove-clause":
		if inRules && j >= 0 && j < len(d.Rules[i].Clauses) {
			d.Rules[i].Clauses = slices.Delete(d.Rules[i].Clauses, j, j+1)
		}
	default:
		return false
	}
	return true
}

// targeting converts the draft into the domain's targeting. Input that cannot even be read (a
// weight that is no number) is an EInvalid naming the field; the rest is the domain's to judge.
func (d targetingDraft) targeting(variations []domain.Variation) (domain.Targeting, error) {
	t := domain.Targeting{On: d.On, OffVariation: d.OffVariation, Targets: []domain.Target{}, Prerequisites: []domain.Prerequisite{}, Rules: []domain.Rule{}}
	for _, v := range variations {
		if keys := lines(d.Targets[v.Key]); len(keys) > 0 {
			t.Targets = append(t.Targets, domain.Target{Variation: v.Key, Values: keys})
		}
	}
	for _, p := range d.Prerequisites {
		t.Prerequisites = append(t.Prerequisites, domain.Prerequisite{Flag: p.Flag, Variation: p.Variation})
	}
	for i, r := range d.Rules {
		rule := domain.Rule{ID: r.ID, Description: r.Description, Clauses: []domain.Clause{}}
		for _, c := range r.Clauses {
			cl := domain.Clause{Attribute: c.Attribute, Operator: domain.Operator(c.Op), Negate: c.Negate, Values: []any{}}
			if cl.Operator == domain.OpInSegment {
				for _, s := range c.Segments {
					cl.Values = append(cl.Values, s)
				}
			} else {
				for _, l := range lines(c.Values) {
					cl.Values = append(cl.Values, clauseValue(cl.Operator, l))
				}
			}
			rule.Clauses = append(rule.Clauses, cl)
		}
		serve, err := r.Serve.serve(variations, fmt.Sprintf("rules[%d].serve", i))
		if err != nil {
			return t, err
		}
		rule.Serve = serve
		t.Rules = append(t.Rules, rule)
	}
	serve, err := d.Default.serve(variations, "default")
	if err != nil {
		return t, err
	}
	t.Default = serve
	return t, nil
}

// clauseValue types one typed line: numbers for the numeric operators, a number or a boolean when
// the line reads as one for the equality operators (quote it to keep a string), else a string.
func clauseValue(op domain.Operator, line string) any {
	if unq, err := strconv.Unquote(line); err == nil && strings.HasPrefix(line, `"`) {
		return unq
	}
	switch op {
	case domain.OpLT, domain.OpLTE, domain.OpGT, domain.OpGTE, domain.OpEquals, domain.OpNotEquals, domain.OpIn, domain.OpNotIn, domain.OpBefore, domain.OpAfter:
		if v, ok := scalarOf(line); ok {
			if _, isBool := v.(bool); isBool && (op == domain.OpBefore || op == domain.OpAfter) {
				return line
			}
			return v
		}
	}
	return line
}

func (s serveDraft) serve(variations []domain.Variation, field string) (domain.Serve, error) {
	if s.Kind != "split" {
		return domain.Serve{Variation: s.Variation}, nil
	}
	sp := &domain.Split{BucketBy: s.BucketBy, Variations: []domain.WeightedVariation{}}
	for _, v := range variations {
		typed := s.Weights[v.Key]
		if typed == "" {
			continue
		}
		pct, err := strconv.ParseFloat(typed, 64)
		if err != nil || pct < 0 || pct > 100 || math.IsNaN(pct) {
			return domain.Serve{}, domain.Invalid(field+".split."+v.Key, "the weight of %s must be a percentage from 0 to 100, not %q", v.Key, typed)
		}
		if w := int(math.Round(pct * domain.BucketCount / 100)); w > 0 {
			sp.Variations = append(sp.Variations, domain.WeightedVariation{Variation: v.Key, Weight: w})
		}
	}
	return domain.Serve{Split: sp}, nil
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// splitSum is the typed weights' total in percent, for the live sum shown beside a split.
func (s serveDraft) splitSum() string {
	sum := 0.0
	for _, w := range s.Weights {
		if f, err := strconv.ParseFloat(w, 64); err == nil {
			sum += f
		}
	}
	return strconv.FormatFloat(sum, 'f', -1, 64)
}
