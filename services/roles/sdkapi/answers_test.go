package sdkapi

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// TestCachedAnswersAreTheWrittenOnes: over the load fixture's 1,000 flags and a few hundred
// contexts, with both kinds of key (ruleId goes to server keys only), every answer taken from the
// cache is byte for byte the one appendSuccess writes for that result.
func TestCachedAnswersAreTheWrittenOnes(t *testing.T) {
	compiled, snap := loadSnapshot(t, 1000)
	r := rand.New(rand.NewPCG(3, 5))
	cachedAnswers := 0
	for range 300 {
		attrs := fixture.Context(r)
		ctx := evaluation.FromOpenFeature(attrs)
		for _, kind := range []string{domain.ServerSideKey, domain.ClientSideKey} {
			cursor := 0
			for _, res := range compiled.EvaluateAll(ctx, nil) {
				if res.IsError() {
					t.Fatalf("fixture flag %s fails: %+v", res.FlagKey, res)
				}
				i := snap.counts.next(&cursor, res.FlagKey)
				want := snap.appendSuccess(nil, &res, kind)
				before := snap.answers.flags[i].Load()
				if got := snap.appendAnswer(nil, i, &res, kind); !bytes.Equal(got, want) {
					t.Fatalf("flag %s (%s key): answered %s, want %s", res.FlagKey, kind, got, want)
				}
				if before != nil && before == snap.answers.flags[i].Load() {
					cachedAnswers++ // answered from the cache, not added to it
				}
			}
		}
	}
	if cachedAnswers == 0 {
		t.Fatal("no answer came from the cache")
	}
	// A result out of place (another flag's position) is written, not taken from the cache.
	res := compiled.Evaluate(fixture.FlagKey(1), nil)
	if got, want := snap.appendAnswer(nil, 0, &res, domain.ServerSideKey), snap.appendSuccess(nil, &res, domain.ServerSideKey); !bytes.Equal(got, want) {
		t.Fatalf("out of place: answered %s, want %s", got, want)
	}
}

// TestCachedAnswersUnderConcurrency: requests filling and reading one snapshot's cache at once
// (run with -race) all get the written answers.
func TestCachedAnswersUnderConcurrency(t *testing.T) {
	compiled, snap := loadSnapshot(t, 200)
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 40 {
				ctx := evaluation.FromOpenFeature(fixture.Context(r))
				cursor := 0
				for _, res := range compiled.EvaluateAll(ctx, nil) {
					i := snap.counts.next(&cursor, res.FlagKey)
					if got, want := snap.appendAnswer(nil, i, &res, domain.ServerSideKey), snap.appendSuccess(nil, &res, domain.ServerSideKey); !bytes.Equal(got, want) {
						errs <- string(got) + " != " + string(want)
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
}

// loadSnapshot compiles the load fixture (its first n flags) into a snapshot.
func loadSnapshot(t *testing.T, n int) (*evaluation.Compiled, *snapshot) {
	t.Helper()
	rs := benchRuleset(t, "load", benchClientKey, benchServerKey, n)
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := newSnapshot(envID{rs.Project, rs.Environment}, rs, compiled)
	if err != nil {
		t.Fatal(err)
	}
	return compiled, snap
}
