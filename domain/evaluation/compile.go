package evaluation

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/vexil-flags/vexil/domain"
)

// Compiled is a ruleset compiled for evaluation: regular expressions compiled, versions, dates and
// numbers parsed, long in-lists turned into sets, variations, segments and prerequisites resolved
// to indexes and pointers, and the prerequisite and segment graphs checked for cycles and depth.
// It is immutable and safe for concurrent use.
//
// Compile does not copy variation values or the FlagConfigs that Flag and the EvaluateAll filter
// receive: the ruleset must not be modified after Compile.
type Compiled struct {
	project     string
	environment string
	version     int64
	flags       map[string]*flag
	order       []*flag // by key
	keys        []string
	segments    []*segment
	segIndex    map[string]int // live segment key -> index in segments
	attrSlots   map[string]int // attribute -> slot in state.vals, for the most used attributes
	memoSlots   map[string]int // clause key -> memo slot (clause.memo), while compiling
	problems    []*domain.Error
}

// evalErr is an error that evaluation returns when it reaches an invalid part of a flag.
type evalErr struct {
	code    string
	message string
}

type variation struct {
	key   string
	value any
	err   *evalErr // the value is not of the flag's type: TYPE_MISMATCH when served
}

type flag struct {
	key        string
	index      int // in Compiled.order
	cfg        *domain.FlagConfig
	version    int64
	salt       string
	variations []variation
	on         bool
	off        serve
	prereqs    []prereq
	// prereqFailed is set by Compile when the prerequisites can never be met: a cycle, a chain
	// deeper than MaxPrerequisiteDepth, or more than MaxPrerequisiteEvaluations evaluations.
	prereqFailed bool
	targets      map[string]int // targeting key -> index in targetServes
	targetServes []serve
	rules        []rule
	def          serve
	exp          *experiment // the running experiment that replaces def for its allocation
}

// experiment is a compiled domain.ExperimentSplit.
type experiment struct {
	key         string
	allocPrefix string // bucketPrefix of the allocation hash (its seed differs from the assignment split's)
	allocation  int    // buckets [0, allocation) of the allocation hash enter the experiment
	serve       serve  // the experiment's own split (seed = the experiment's seed, by targeting key)
}

// ExperimentAllocationSeed is the seed of an experiment's allocation hash: "allocation/" followed
// by the experiment's seed (see BUCKETING.md).
func ExperimentAllocationSeed(seed string) string { return "allocation/" + seed }

type prereq struct {
	flag      *flag // nil when the flag is not in the ruleset
	variation int   // required variation index, -1 when the flag has no such variation
}

// serve is a compiled domain.Serve (or off variation): a variation index, or a split, or, with
// variation -1 and no split, no variation at all (an empty off variation).
type serve struct {
	variation int
	split     *split
	err       *evalErr
}

type split struct {
	prefix  string // bucketPrefix of the split's seed (or the flag key) and the flag's salt
	by      attrRef
	bounds  []int // cumulative weights: variation i holds buckets [bounds[i-1], bounds[i])
	vars    []int // variation indexes
	missing string
}

type rule struct {
	id      string
	clauses []clause
	serve   serve
	err     *evalErr
}

type segment struct {
	key      string
	included map[string]struct{}
	excluded map[string]struct{}
	clauses  []clause
	matchAny bool
	err      *domain.Error
}

// Compile compiles a ruleset. It fails only when rs is nil. An invalid part of a flag (an
// invalid clause, an unknown variation, weights that do not add up) does not fail the whole
// ruleset: it is listed by Problems, and evaluation that reaches it returns an ERROR result, so
// one bad flag cannot stop every other flag from being served.
func Compile(rs *domain.Ruleset) (*Compiled, error) {
	if rs == nil {
		return nil, domain.Errorf(domain.EInvalid, "no ruleset to compile")
	}
	c := &Compiled{project: rs.Project, environment: rs.Environment, version: rs.Version,
		flags: make(map[string]*flag, len(rs.Flags))}
	c.compileSegments(rs.Segments)
	for _, k := range slices.Sorted(maps.Keys(rs.Flags)) {
		if cfg := rs.Flags[k]; cfg != nil {
			f := c.compileFlag(k, cfg)
			f.index = len(c.order)
			c.flags[k] = f
			c.order = append(c.order, f)
			c.keys = append(c.keys, k)
		}
	}
	c.linkPrerequisites()
	c.memoSlots = nil // only Compile assigns slots
	return c, nil
}

// Version returns the ruleset's version.
func (c *Compiled) Version() int64 { return c.version }

// Project returns the ruleset's project key.
func (c *Compiled) Project() string { return c.project }

// Environment returns the ruleset's environment key.
func (c *Compiled) Environment() string { return c.environment }

// Flag returns the configuration a flag was compiled from (read-only), if the flag exists.
func (c *Compiled) Flag(key string) (*domain.FlagConfig, bool) {
	f, ok := c.flags[key]
	if !ok {
		return nil, false
	}
	return f.cfg, true
}

// Flags returns the keys of every flag, sorted.
func (c *Compiled) Flags() []string { return slices.Clone(c.keys) }

// Problems lists what Compile found invalid, with field paths from the ruleset root
// ("flags.checkout.targeting.rules[2].clauses[0].values[1]"). The ruleset projector validates
// commands, so problems point at a bug, a ruleset from a newer server, or a hand-made ruleset.
func (c *Compiled) Problems() []*domain.Error { return slices.Clone(c.problems) }

func (c *Compiled) problem(err *domain.Error, parent string) *domain.Error {
	e := err.WithField(parent)
	c.problems = append(c.problems, e)
	return e
}

// parseErr records err (relative to parent, itself relative to the flag at flagField) and
// returns the PARSE_ERROR that evaluation reaching it returns.
func (c *Compiled) parseErr(err *domain.Error, flagField, parent string) *evalErr {
	c.problem(err, flagField+"."+parent)
	rel := err.WithField(parent)
	return &evalErr{code: ErrorParse, message: rel.Field + ": " + rel.Message}
}

// ---- Segments ----

func (c *Compiled) compileSegments(segs map[string]*domain.Segment) {
	c.segIndex = map[string]int{}
	keys := slices.Sorted(maps.Keys(segs))
	var live []*domain.Segment
	for _, k := range keys {
		s := segs[k]
		if s == nil || s.Archived {
			continue // an unknown segment: in_segment treats it as empty
		}
		c.segIndex[k] = len(c.segments)
		c.segments = append(c.segments, &segment{key: k})
		live = append(live, s)
	}
	for i, s := range live {
		cs := c.segments[i]
		field := "segments." + cs.key
		switch s.Match {
		case domain.MatchAll, "":
		case domain.MatchAny:
			cs.matchAny = true
		default:
			cs.err = c.problem(domain.Invalid("match", "match must be %q or %q", domain.MatchAll, domain.MatchAny), field)
		}
		cs.included = stringSet(s.Included)
		cs.excluded = stringSet(s.Excluded)
		for j, cl := range s.Clauses {
			cc, err := c.compileClause(cl)
			if err != nil {
				e := c.problem(err.WithField(indexField("clauses", j)), field)
				if cs.err == nil {
					cs.err = e
				}
				continue
			}
			cs.clauses = append(cs.clauses, cc)
		}
	}
	c.checkSegmentGraph()
}

// checkSegmentGraph marks invalid every segment that is on or leads to a cycle, leads to an
// invalid segment, or whose nested in_segment references cost more than MaxSegmentEvaluations
// segment checks. A depth-first search suffices: a node reaching a node still on the stack is on
// a cycle, and invalidity propagates from finished nodes to the nodes that reach them.
func (c *Compiled) checkSegmentGraph() {
	const (
		unvisited = iota
		active
		done
	)
	state := make([]uint8, len(c.segments))
	cost := make([]int, len(c.segments))
	var visit func(i int)
	visit = func(i int) {
		state[i] = active
		s := c.segments[i]
		total := 1
		var why *domain.Error
		for _, cl := range s.clauses {
			for _, r := range cl.segs {
				switch state[r] {
				case unvisited:
					visit(r)
				case active:
					if why == nil {
						why = domain.Invalid("", "segment %s is part of a cycle of in_segment references", s.key)
					}
					continue
				}
				if e := c.segments[r].err; e != nil && why == nil {
					why = domain.Invalid("", "segment %s uses invalid segment %s", s.key, c.segments[r].key)
				}
				total = min(total+cost[r], MaxSegmentEvaluations+1)
			}
		}
		if why == nil && total > MaxSegmentEvaluations {
			why = domain.Invalid("", "segment %s nests segments too deeply (over %d segment checks)", s.key, MaxSegmentEvaluations)
		}
		if why != nil && s.err == nil {
			s.err = c.problem(why, "segments."+s.key)
		}
		cost[i] = total
		state[i] = done
	}
	for i := range c.segments {
		if state[i] == unvisited {
			visit(i)
		}
	}
}

// contains reports whether ctx is in the segment: excluded wins over included, which wins over
// the clauses.
func (s *segment) contains(st *state) bool {
	if key := st.ctx.Key; key != "" {
		if _, ok := s.excluded[key]; ok {
			return false
		}
		if _, ok := s.included[key]; ok {
			return true
		}
	}
	if len(s.clauses) == 0 {
		return false
	}
	return matchClauses(s.clauses, st, !s.matchAny)
}

// ---- Flags ----

func (c *Compiled) compileFlag(key string, cfg *domain.FlagConfig) *flag {
	field := "flags." + key
	f := &flag{key: key, cfg: cfg, version: cfg.Version, salt: cfg.Salt, on: cfg.Targeting.On}
	if cfg.Key != "" && cfg.Key != key {
		c.problem(domain.Invalid("key", "flag key %q differs from its ruleset key %q", cfg.Key, key), field)
	}
	for i, v := range cfg.Variations {
		cv := variation{key: v.Key, value: v.Value}
		if !domain.ValidateValueType(cfg.Type, v.Value) {
			e := c.problem(domain.Invalid(indexField("variations", i)+".value", "variation %s is not a valid %s value", v.Key, cfg.Type), field)
			cv.err = &evalErr{code: ErrorTypeMismatch, message: e.Field + ": " + e.Message}
		}
		if f.variationIndex(v.Key) >= 0 {
			c.problem(domain.Invalid(indexField("variations", i)+".key", "duplicate variation %s", v.Key), field)
		}
		f.variations = append(f.variations, cv)
	}
	t := &cfg.Targeting
	f.off = serve{variation: -1}
	if t.OffVariation != "" {
		f.off = c.compileVariation(f, t.OffVariation, field, "targeting.off_variation")
	}
	f.prereqs = make([]prereq, len(t.Prerequisites)) // resolved by linkPrerequisites
	for i, tg := range t.Targets {
		sv := c.compileVariation(f, tg.Variation, field, indexField("targeting.targets", i)+".variation")
		f.targetServes = append(f.targetServes, sv)
		for _, k := range tg.Values {
			if k == "" {
				continue
			}
			if f.targets == nil {
				f.targets = map[string]int{}
			}
			if _, dup := f.targets[k]; !dup { // the first target listing a key wins
				f.targets[k] = i
			}
		}
	}
	for i, r := range t.Rules {
		f.rules = append(f.rules, c.compileRule(f, r, field, indexField("targeting.rules", i)))
	}
	f.def = c.compileServe(f, t.Default, field, "targeting.default")
	if x := cfg.Experiment; x != nil {
		exp := &experiment{key: x.Key, allocPrefix: bucketPrefix(ExperimentAllocationSeed(x.Seed), cfg.Salt), allocation: x.Allocation,
			serve: c.compileServe(f, domain.Serve{Split: &domain.Split{Seed: x.Seed, Variations: x.Variations}}, field, "experiment")}
		switch {
		case x.Key == "" || x.Seed == "":
			c.problem(domain.Invalid("experiment", "an experiment needs a key and a seed"), field)
		case x.Allocation <= 0 || x.Allocation > BucketCount:
			c.problem(domain.Invalid("experiment.allocation", "allocation must be between 1 and %d", BucketCount), field)
		default:
			// A broken experiment split answers PARSE_ERROR to the users it admits, like any
			// broken serve; the others keep the flag's targeting.
			f.exp = exp
		}
	}
	return f
}

func (c *Compiled) compileRule(f *flag, r domain.Rule, flagField, field string) rule {
	cr := rule{id: r.ID}
	for j, cl := range r.Clauses {
		cf := field + "." + indexField("clauses", j)
		cc, err := c.compileClause(cl)
		if err != nil {
			if cr.err == nil {
				cr.err = c.parseErr(err, flagField, cf)
			} else {
				c.problem(err, flagField+"."+cf)
			}
			continue
		}
		for _, s := range cc.segs {
			if seg := c.segments[s]; seg.err != nil && cr.err == nil {
				cr.err = &evalErr{code: ErrorParse, message: cf + ": segment " + seg.key + " is invalid: " + seg.err.Message}
			}
		}
		cr.clauses = append(cr.clauses, cc)
	}
	cr.serve = c.compileServe(f, r.Serve, flagField, field+".serve")
	return cr
}

func (c *Compiled) compileServe(f *flag, s domain.Serve, flagField, field string) serve {
	bad := func(e *domain.Error) serve {
		return serve{variation: -1, err: c.parseErr(e, flagField, field)}
	}
	switch {
	case s.Split != nil && s.Variation != "":
		return bad(domain.Invalid("", "serve names both a variation and a split"))
	case s.Split == nil && s.Variation == "":
		return bad(domain.Invalid("", "serve names neither a variation nor a split"))
	case s.Split == nil:
		return c.compileVariation(f, s.Variation, flagField, field+".variation")
	}
	seed := s.Split.Seed
	if seed == "" {
		seed = f.key
	}
	sp := &split{prefix: bucketPrefix(seed, f.salt)}
	if s.Split.BucketBy == "" {
		sp.by = attrRef{name: "key", isKey: true}
		sp.missing = "the split buckets by the targeting key, which the context lacks"
	} else {
		sp.by = c.compileAttr(s.Split.BucketBy)
		sp.missing = "the split buckets by attribute " + strconv.Quote(s.Split.BucketBy) +
			", which the context lacks or holds as neither a non-empty string nor an integer"
		if sp.by.isKey {
			sp.missing = "the split buckets by the targeting key, which the context lacks"
		}
	}
	if len(s.Split.Variations) == 0 {
		return bad(domain.Invalid("split.variations", "a split needs at least one variation"))
	}
	total := 0
	for i, wv := range s.Split.Variations {
		vf := "split." + indexField("variations", i)
		vi := f.variationIndex(wv.Variation)
		if vi < 0 {
			return bad(domain.Invalid(vf+".variation", "unknown variation %q", wv.Variation))
		}
		if wv.Weight < 0 || wv.Weight > BucketCount {
			return bad(domain.Invalid(vf+".weight", "weight must be between 0 and %d", BucketCount))
		}
		total += wv.Weight
		sp.bounds = append(sp.bounds, total)
		sp.vars = append(sp.vars, vi)
	}
	if total != BucketCount {
		return bad(domain.Invalid("split.variations", "weights add up to %d, not %d", total, BucketCount))
	}
	return serve{variation: -1, split: sp}
}

// compileVariation compiles a fixed variation.
func (c *Compiled) compileVariation(f *flag, key, flagField, field string) serve {
	i := f.variationIndex(key)
	if i < 0 {
		return serve{variation: -1, err: c.parseErr(domain.Invalid("", "unknown variation %q", key), flagField, field)}
	}
	return serve{variation: i}
}

func (f *flag) variationIndex(key string) int {
	for i := range f.variations {
		if f.variations[i].key == key {
			return i
		}
	}
	return -1
}

// ---- Prerequisites ----

// linkPrerequisites resolves prerequisites to flags and marks the flags whose prerequisites can
// never be met: on or leading to a cycle, deeper than MaxPrerequisiteDepth, or costing more
// than MaxPrerequisiteEvaluations evaluations.
func (c *Compiled) linkPrerequisites() {
	for _, f := range c.order {
		for i, p := range f.cfg.Targeting.Prerequisites {
			pf := c.flags[p.Flag]
			f.prereqs[i].flag = pf
			if pf == nil {
				continue // a dangling reference: never met
			}
			if f.prereqs[i].variation = pf.variationIndex(p.Variation); f.prereqs[i].variation < 0 {
				c.problem(domain.Invalid("variation", "flag %s has no variation %q", p.Flag, p.Variation),
					"flags."+f.key+"."+indexField("targeting.prerequisites", i))
			}
		}
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make(map[*flag]uint8, len(c.order))
	depth := make(map[*flag]int, len(c.order))
	cost := make(map[*flag]int, len(c.order))
	var visit func(f *flag)
	visit = func(f *flag) {
		state[f] = active
		d, total := 0, 1
		for _, p := range f.prereqs {
			if p.flag == nil {
				continue
			}
			switch state[p.flag] {
			case unvisited:
				visit(p.flag)
			case active:
				f.prereqFailed = true
				continue
			}
			if p.flag.prereqFailed {
				f.prereqFailed = true
			}
			d = max(d, depth[p.flag]+1)
			total = min(total+cost[p.flag], MaxPrerequisiteEvaluations+1)
		}
		if d > MaxPrerequisiteDepth || total > MaxPrerequisiteEvaluations {
			f.prereqFailed = true
		}
		depth[f], cost[f] = min(d, MaxPrerequisiteDepth+1), total
		state[f] = done
	}
	for _, f := range c.order {
		if state[f] == unvisited {
			visit(f)
		}
	}
}

// ---- helpers ----

func stringSet(xs []string) map[string]struct{} {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(xs))
	for _, x := range xs {
		m[x] = struct{}{}
	}
	return m
}

func indexField(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }
