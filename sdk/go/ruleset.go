package vexil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// snapshot is one ruleset as the provider serves it: immutable once installed, replaced whole
// (an atomic pointer swap) when a new version arrives.
type snapshot struct {
	version  int64
	etag     string
	body     []byte // the ruleset as downloaded, for SaveBootstrap
	ruleset  *domain.Ruleset
	compiled *evaluation.Compiled
	// flags holds what the provider prepares per flag, by the flag's index in compiled
	// (evaluation.Compiled.Index), so that one lookup by key serves both.
	flags []*flagInfo
	// keyAttribute is set when some clause or split of the ruleset reads an attribute named
	// "targetingKey": OpenFeature's flattened context must then be copied without that entry
	// (as the server does), instead of being used as it is.
	keyAttribute bool
}

// flagInfo is what the provider prepares per flag so that answering allocates nothing: the
// OpenFeature metadata (the values OFREP's answers carry: flagVersion, ruleId, experiment) and
// the evaluation counters by variation.
type flagInfo struct {
	key            string
	index          int                        // in the compiled ruleset, for EvaluateIndex
	metaDefault    openfeature.FlagMetadata   // no rule matched
	metaExperiment openfeature.FlagMetadata   // the running experiment served
	metaRule       []openfeature.FlagMetadata // by rule index
	counts         []atomic.Int64             // by variation index; the last one counts "no variation"
	variations     []string
}

// newSnapshot decodes and compiles a downloaded ruleset.
func newSnapshot(body []byte, etag string) (*snapshot, error) {
	var rs domain.Ruleset
	if err := json.Unmarshal(body, &rs); err != nil {
		return nil, fmt.Errorf("vexil: decode ruleset: %w", err)
	}
	compiled, err := evaluation.Compile(&rs)
	if err != nil {
		return nil, fmt.Errorf("vexil: compile ruleset %s/%s version %d: %w", rs.Project, rs.Environment, rs.Version, err)
	}
	s := &snapshot{version: rs.Version, etag: etag, body: body, ruleset: &rs, compiled: compiled,
		flags: make([]*flagInfo, len(compiled.Flags())), keyAttribute: bytes.Contains(body, []byte(openfeature.TargetingKey))}
	if s.etag == "" {
		s.etag = fmt.Sprintf("%q", fmt.Sprint(rs.Version))
	}
	for key, f := range rs.Flags {
		index, ok := compiled.Index(key)
		if !ok { // a null flag in the JSON: Compile skipped it, evaluating it is FLAG_NOT_FOUND
			continue
		}
		version := float64(f.Version)
		fi := &flagInfo{
			key:         key,
			index:       index,
			metaDefault: openfeature.FlagMetadata{"flagVersion": version},
			counts:      make([]atomic.Int64, len(f.Variations)+1),
		}
		for _, v := range f.Variations {
			fi.variations = append(fi.variations, v.Key)
		}
		if f.Experiment != nil {
			fi.metaExperiment = openfeature.FlagMetadata{"flagVersion": version, "experiment": f.Experiment.Key}
		}
		for _, r := range f.Targeting.Rules {
			fi.metaRule = append(fi.metaRule, openfeature.FlagMetadata{"flagVersion": version, "ruleId": r.ID})
		}
		s.flags[index] = fi
	}
	return s, nil
}

// metadata is the OpenFeature flag metadata of r (shared: callers must not modify it).
func (fi *flagInfo) metadata(r *evaluation.Result) openfeature.FlagMetadata {
	switch {
	case r.Experiment != "" && fi.metaExperiment != nil && r.RuleIndex < 0:
		return fi.metaExperiment
	case r.RuleIndex >= 0 && r.RuleIndex < len(fi.metaRule):
		return fi.metaRule[r.RuleIndex]
	}
	return fi.metaDefault
}

// changedFlags lists, sorted, the flags whose evaluation next may answer differently from prev:
// added, removed, or of another version, and, when a segment changed, every flag that reads a
// segment (a segment change moves no flag version).
func changedFlags(prev, next *snapshot) []string {
	var out []string
	if prev == nil {
		return slices.Sorted(maps.Keys(next.ruleset.Flags))
	}
	segmentsChanged := !segmentsEqual(prev.ruleset.Segments, next.ruleset.Segments)
	for key, nf := range next.ruleset.Flags {
		pf, ok := prev.ruleset.Flags[key]
		if !ok || pf == nil || nf == nil || pf.Version != nf.Version || (segmentsChanged && readsSegments(nf)) {
			out = append(out, key)
		}
	}
	for key := range prev.ruleset.Flags {
		if _, ok := next.ruleset.Flags[key]; !ok {
			out = append(out, key)
		}
	}
	// A flag whose prerequisite changed may answer differently too, transitively.
	changed := make(map[string]bool, len(out))
	for _, k := range out {
		changed[k] = true
	}
	for grew := true; grew; {
		grew = false
		for key, f := range next.ruleset.Flags {
			if changed[key] || f == nil {
				continue
			}
			for _, p := range f.Targeting.Prerequisites {
				if changed[p.Flag] {
					changed[key], grew = true, true
					out = append(out, key)
					break
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func segmentsEqual(a, b map[string]*domain.Segment) bool {
	if len(a) != len(b) {
		return false
	}
	ja, errA := json.Marshal(a) // map keys are sorted: equal segments give equal bytes
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

func readsSegments(f *domain.FlagConfig) bool {
	for _, r := range f.Targeting.Rules {
		for _, c := range r.Clauses {
			if c.Operator == domain.OpInSegment {
				return true
			}
		}
	}
	return false
}

// flag returns what the provider prepared for a flag, nil when the ruleset has no such flag.
func (s *snapshot) flag(key string) *flagInfo {
	if i, ok := s.compiled.Index(key); ok {
		return s.flags[i]
	}
	return nil
}
