package sdkapi

import (
	"slices"
	"sync/atomic"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// answerCache keeps, per flag of a snapshot (by evaluation order), the OFREP evaluationSuccess
// bodies already written. A flag has few distinct answers (a variation, a reason, a rule, an
// experiment: whatever the context, they come from a short list fixed by the snapshot), and a bulk
// evaluation writes one per flag: copying the bytes costs a fraction of escaping and appending
// every field again, which was a fifth of a bulk evaluation of 1,000 flags. Entries are only
// ever added, copy on write, so readers take no lock.
type answerCache struct {
	flags []atomic.Pointer[[]cachedAnswer]
}

// maxCachedAnswers bounds the answers kept per flag; past it, answers are written as before.
const maxCachedAnswers = 16

// cachedAnswer is one evaluationSuccess body and every Result field it was written from
// (appendSuccess): the flag key is the slot's, the value the variation's.
type cachedAnswer struct {
	reason, variation, ruleID, experiment string
	variationIndex                        int
	flagVersion                           int64
	serverKey                             bool
	json                                  []byte
}

func newAnswerCache(flags int) answerCache {
	return answerCache{flags: make([]atomic.Pointer[[]cachedAnswer], flags)}
}

func (a *cachedAnswer) answers(r *evaluation.Result, serverKey bool) bool {
	return a.variationIndex == r.VariationIndex && a.reason == r.Reason && a.variation == r.Variation &&
		a.ruleID == r.RuleID && a.experiment == r.Experiment && a.flagVersion == r.FlagVersion && a.serverKey == serverKey
}

// appendAnswer is appendSuccess for the result of the flag at position i of the evaluation order
// (evaluation.Compiled.Index; -1 when unknown), from the cache when it holds that answer.
func (snap *snapshot) appendAnswer(dst []byte, i int, r *evaluation.Result, kind string) []byte {
	// Without a variation the value is whatever the result holds (nil on every path today), not
	// one of the flag's: such answers are not cached.
	if i < 0 || i >= len(snap.answers.flags) || snap.counts.keys[i] != r.FlagKey ||
		(r.VariationIndex < 0 && r.Value != nil) {
		return snap.appendSuccess(dst, r, kind)
	}
	serverKey := kind == domain.ServerSideKey
	slot := &snap.answers.flags[i]
	cached := slot.Load()
	if cached != nil {
		for k := range *cached {
			if a := &(*cached)[k]; a.answers(r, serverKey) {
				return append(dst, a.json...)
			}
		}
		if len(*cached) >= maxCachedAnswers {
			return snap.appendSuccess(dst, r, kind)
		}
	}
	start := len(dst)
	dst = snap.appendSuccess(dst, r, kind)
	var next []cachedAnswer
	if cached != nil {
		next = slices.Clip(*cached)
	}
	next = append(next, cachedAnswer{reason: r.Reason, variation: r.Variation, ruleID: r.RuleID, experiment: r.Experiment,
		variationIndex: r.VariationIndex, flagVersion: r.FlagVersion, serverKey: serverKey, json: slices.Clone(dst[start:])})
	slot.CompareAndSwap(cached, &next) // a lost race only leaves this answer to be cached next time
	return dst
}
