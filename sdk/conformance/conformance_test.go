package conformance_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/sdk/conformance"
	vexil "github.com/vexil-flags/vexil/sdk/go"
)

// contextsToCompare is the number of random contexts of TestGoSDKAgreesWithOFREP:
// VEXIL_CONFORMANCE_CONTEXTS, 100,000 by default (the figure).
func contextsToCompare(t *testing.T) int {
	if s := os.Getenv("VEXIL_CONFORMANCE_CONTEXTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("VEXIL_CONFORMANCE_CONTEXTS=%q is not a positive number", s)
		}
		return n
	}
	return 100_000
}

// The fixture seeded into a running platform answers the same through the server's OFREP and
// through the Go SDK's local evaluation: first its cases, with their expected answers, then
// random contexts drawn from its pools, with 0 differences in value, variant, reason, error
// code and metadata allowed.
func TestGoSDKAgreesWithOFREP(t *testing.T) {
	// Exposures are not what this test is about: neither side logs them.
	s := startServer(t, "--server-exposures", "false")
	fx, keys := seed(t, s)
	p := provider(t, s.base(), keys.Server, func(o *vexil.Options) { o.DisableExposures = true })
	types := map[string]string{}
	for _, f := range fx.Flags {
		types[f.Key()] = f.Type()
	}
	typeOf := func(flag string) string {
		if typ, ok := types[flag]; ok {
			return typ
		}
		return "boolean"
	}
	// Same ruleset on both sides.
	bulk := ofrepBulk(t, s.base(), keys.Server, map[string]any{})
	if len(bulk) != len(fx.Flags) {
		t.Fatalf("OFREP answers %d flags, the fixture has %d", len(bulk), len(fx.Flags))
	}

	t.Run("cases", func(t *testing.T) {
		for _, c := range fx.Cases {
			for flag, want := range c.Expect {
				remote, _ := ofrepSingle(t, s.base(), keys.Server, flag, c.Context)
				mine := local(p, flag, typeOf(flag), c.Context)
				for who, got := range map[string]answer{"OFREP": remote, "Go SDK": mine} {
					if msg := mismatch(want, got.Answer); msg != "" {
						t.Errorf("case %q, flag %s, %s: %s", c.Name, flag, who, msg)
					}
				}
			}
		}
	})

	t.Run("random contexts", func(t *testing.T) {
		n := contextsToCompare(t)
		seed := uint64(time.Now().UnixNano())
		t.Logf("%d random contexts over %d flags, seed %d", n, len(fx.Flags), seed)
		const workers = 4
		var mu sync.Mutex
		var diffs []string
		ndiff := 0
		// coverage counts, per flag, the reasons (and error codes) seen: evidence that the random
		// contexts reach every branch the fixture has.
		coverage := map[string]map[string]int{}
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				seen := map[string]map[string]int{}
				var mine []string
				bad := 0
				for i := w; i < n; i += workers {
					ctx := fx.RandomContext(rng)
					remote := ofrepBulk(t, s.base(), keys.Server, ctx)
					for _, flag := range fx.FlagKeys() {
						got := local(p, flag, types[flag], ctx)
						want := remote[flag]
						if msg := differs(want, got); msg != "" {
							bad++
							if len(mine) < 5 {
								b, _ := json.Marshal(ctx)
								mine = append(mine, fmt.Sprintf("flag %s, context %s: %s", flag, b, msg))
							}
						}
						if seen[flag] == nil {
							seen[flag] = map[string]int{}
						}
						seen[flag][strings.TrimSuffix(got.Reason+" "+got.ErrorCode, " ")]++
					}
				}
				mu.Lock()
				defer mu.Unlock()
				ndiff += bad
				diffs = append(diffs, mine...)
				for f, m := range seen {
					if coverage[f] == nil {
						coverage[f] = map[string]int{}
					}
					for r, c := range m {
						coverage[f][r] += c
					}
				}
			}(w)
		}
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("%d contexts x %d flags compared in %v (%.0f contexts/s): %d differences",
			n, len(fx.Flags), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), ndiff)
		for _, f := range fx.FlagKeys() {
			reasons := slices.Sorted(mapsKeys(coverage[f]))
			var parts []string
			for _, r := range reasons {
				parts = append(parts, fmt.Sprintf("%s %d", r, coverage[f][r]))
			}
			t.Logf("  %-20s %s", f, strings.Join(parts, ", "))
		}
		if ndiff > 0 {
			t.Fatalf("%d differences between OFREP and the Go SDK, e.g.:\n%s", ndiff, strings.Join(diffs, "\n"))
		}
	})
}

func mapsKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// mismatch compares an answer with an expectation of the fixture (its empty fields are not
// checked).
func mismatch(want, got conformance.Answer) string {
	var msgs []string
	if want.Reason != "" && want.Reason != got.Reason {
		msgs = append(msgs, fmt.Sprintf("reason %q, want %q", got.Reason, want.Reason))
	}
	if want.ErrorCode != got.ErrorCode {
		msgs = append(msgs, fmt.Sprintf("error code %q, want %q", got.ErrorCode, want.ErrorCode))
	}
	if want.Variant != "" && want.Variant != got.Variant {
		msgs = append(msgs, fmt.Sprintf("variant %q, want %q", got.Variant, want.Variant))
	}
	if want.Value != nil && !sameJSON(want.Value, got.Value) {
		msgs = append(msgs, fmt.Sprintf("value %v, want %v", got.Value, want.Value))
	}
	return strings.Join(msgs, "; ")
}

// differs compares OFREP's answer with the SDK's: value, variant, reason, error code, metadata.
func differs(remote, mine answer) string {
	if remote.Reason != mine.Reason || remote.ErrorCode != mine.ErrorCode || remote.Variant != mine.Variant ||
		!sameJSON(remote.Value, mine.Value) {
		return fmt.Sprintf("OFREP %+v, Go SDK %+v", remote.Answer, mine.Answer)
	}
	if remote.ErrorCode == "" && !sameJSON(remote.metadata, mine.metadata) {
		return fmt.Sprintf("metadata: OFREP %v, Go SDK %v", remote.metadata, mine.metadata)
	}
	return ""
}

// sameJSON compares two values as JSON (the SDK's values are decoded JSON too).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}
