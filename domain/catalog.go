package domain

import (
	"maps"
	"slices"
	"sort"
)

// Catalog is the reference data that commands need to validate references across aggregates:
// the environments of the project, its segments and its flags. The application layer fills it
// from read models (or by folding streams) before running a command; the domain only reads it.
//
// Validation against a catalog is as good as the catalog is fresh: two concurrent commands on
// different aggregates can each pass (e.g. archiving a segment while a rule starts using it).
// The evaluator treats a dangling reference as "no match", so such a race degrades safely.
//
// A nil *Catalog is valid and behaves as an empty one: it knows no environment, flag or segment.
type Catalog struct {
	// Environments are the environment keys of the project, in creation order.
	Environments []string
	// Segments by key, archived ones included.
	Segments map[string]SegmentInfo
	// Flags by key, archived ones included.
	Flags map[string]FlagInfo
}

// SegmentInfo is what validation needs to know about a segment.
type SegmentInfo struct {
	Archived bool `json:"archived"`
	// Segments are the keys the segment's in_segment clauses name (its edges in the segment
	// graph, used to reject cycles).
	Segments []string `json:"segments"`
}

// FlagInfo is what validation needs to know about a flag.
type FlagInfo struct {
	Type       FlagType `json:"type"`
	Variations []string `json:"variations"` // variation keys
	Archived   bool     `json:"archived"`
	// Prerequisites per environment key: the edges of the prerequisite graph, which must stay
	// acyclic within each environment.
	Prerequisites map[string][]Prerequisite `json:"prerequisites"`
	// Segments are the segment keys named by in_segment clauses of any environment's rules.
	Segments []string `json:"segments"`
}

// NewCatalog returns an empty catalog ready to be filled.
func NewCatalog() *Catalog {
	return &Catalog{Segments: map[string]SegmentInfo{}, Flags: map[string]FlagInfo{}}
}

// BuildCatalog is a convenience for the application layer and tests: a catalog of the project's
// environments (p may be nil), flags and segments.
func BuildCatalog(p *Project, flags []*Flag, segments []*Segment) *Catalog {
	c := NewCatalog()
	if p != nil {
		c.AddProject(p)
	}
	for _, f := range flags {
		c.AddFlag(f)
	}
	for _, s := range segments {
		c.AddSegment(s)
	}
	return c
}

// AddProject records the environments of p, in creation order.
func (c *Catalog) AddProject(p *Project) {
	c.Environments = c.Environments[:0:0]
	for _, k := range p.EnvironmentOrder {
		if _, ok := p.Environments[k]; ok {
			c.Environments = append(c.Environments, k)
		}
	}
}

// AddFlag records (or replaces) a flag.
func (c *Catalog) AddFlag(f *Flag) {
	if c.Flags == nil {
		c.Flags = map[string]FlagInfo{}
	}
	c.Flags[f.Key] = FlagInfoOf(f)
}

// AddSegment records (or replaces) a segment.
func (c *Catalog) AddSegment(s *Segment) {
	if c.Segments == nil {
		c.Segments = map[string]SegmentInfo{}
	}
	c.Segments[s.Key] = SegmentInfoOf(s)
}

// FlagInfoOf extracts the catalog entry of a flag.
func FlagInfoOf(f *Flag) FlagInfo {
	fi := FlagInfo{Type: f.Type, Archived: f.Archived, Prerequisites: map[string][]Prerequisite{}}
	for _, v := range f.Variations {
		fi.Variations = append(fi.Variations, v.Key)
	}
	seen := map[string]bool{}
	for _, env := range slices.Sorted(maps.Keys(f.Environments)) {
		t := f.Environments[env]
		if t == nil {
			continue
		}
		if len(t.Prerequisites) > 0 {
			fi.Prerequisites[env] = append([]Prerequisite(nil), t.Prerequisites...)
		}
		for _, r := range t.Rules {
			for _, s := range ClauseSegments(r.Clauses) {
				if !seen[s] {
					seen[s] = true
					fi.Segments = append(fi.Segments, s)
				}
			}
		}
	}
	return fi
}

// SegmentInfoOf extracts the catalog entry of a segment.
func SegmentInfoOf(s *Segment) SegmentInfo {
	return SegmentInfo{Archived: s.Archived, Segments: ClauseSegments(s.Clauses)}
}

// HasEnvironment reports whether env is an environment of the project.
func (c *Catalog) HasEnvironment(env string) bool {
	if c == nil {
		return false
	}
	return slices.Contains(c.Environments, env)
}

// Flag returns the catalog entry of a flag.
func (c *Catalog) Flag(key string) (FlagInfo, bool) {
	if c == nil {
		return FlagInfo{}, false
	}
	fi, ok := c.Flags[key]
	return fi, ok
}

// Segment returns the catalog entry of a segment.
func (c *Catalog) Segment(key string) (SegmentInfo, bool) {
	if c == nil {
		return SegmentInfo{}, false
	}
	si, ok := c.Segments[key]
	return si, ok
}

// HasVariation reports whether flag exists in the catalog and has a variation with key variation.
func (fi FlagInfo) HasVariation(variation string) bool {
	return slices.Contains(fi.Variations, variation)
}

// FlagsUsingSegment returns the keys of the live (non-archived) flags whose rules name segment,
// sorted.
func (c *Catalog) FlagsUsingSegment(segment string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Flags, func(_ string, fi FlagInfo) bool {
		return !fi.Archived && slices.Contains(fi.Segments, segment)
	})
}

// SegmentsUsingSegment returns the keys of the live segments whose clauses name segment, sorted.
func (c *Catalog) SegmentsUsingSegment(segment string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Segments, func(k string, si SegmentInfo) bool {
		return !si.Archived && k != segment && slices.Contains(si.Segments, segment)
	})
}

// FlagsRequiring returns the keys of the live flags that have flag as a prerequisite in any
// environment, sorted.
func (c *Catalog) FlagsRequiring(flag string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Flags, func(k string, fi FlagInfo) bool {
		if fi.Archived || k == flag {
			return false
		}
		for _, ps := range fi.Prerequisites {
			if slices.ContainsFunc(ps, func(p Prerequisite) bool { return p.Flag == flag }) {
				return true
			}
		}
		return false
	})
}

// keysWhere returns the keys of m whose entries keep accepts, sorted: the catalogs' "who uses
// this" questions.
func keysWhere[V any](m map[string]V, keep func(k string, v V) bool) []string {
	var out []string
	for k, v := range m {
		if keep(k, v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// prerequisitePath reports whether the prerequisite graph of environment env leads from flag
// from to flag to. self's edges in env are replaced by override (the prerequisites being
// validated), so a command is checked against the graph it would produce.
func (c *Catalog) prerequisitePath(env, from, to, self string, override []Prerequisite) bool {
	edges := func(k string) []Prerequisite {
		if k == self {
			return override
		}
		fi, _ := c.Flag(k)
		return fi.Prerequisites[env]
	}
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if k == to {
			return true
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		for _, p := range edges(k) {
			if !seen[p.Flag] {
				stack = append(stack, p.Flag)
			}
		}
	}
	return false
}

// segmentPath reports whether the segment graph leads from segment from to segment to. self's
// edges are replaced by override.
func (c *Catalog) segmentPath(from, to, self string, override []string) bool {
	edges := func(k string) []string {
		if k == self {
			return override
		}
		si, _ := c.Segment(k)
		return si.Segments
	}
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if k == to {
			return true
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		for _, s := range edges(k) {
			if !seen[s] {
				stack = append(stack, s)
			}
		}
	}
	return false
}

// sortedKeys returns the keys of m sorted, an empty slice (not nil) for an empty map: tags and
// user keys stored in events encode as [] rather than null.
func sortedKeys[V any](m map[string]V) []string {
	out := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(out)
	return out
}
