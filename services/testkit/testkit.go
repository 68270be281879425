// Package testkit holds what every test of the platform shares: waiting for a condition with a
// deadline instead of sleeping, and the house rule that no test asserts a wall-clock duration
// under five seconds (speed goals live in benchmarks and the load tool; see wallclock_test.go).
package testkit

import (
	"testing"
	"time"
)

// MinWallClockAssertion is the shortest wall-clock limit a test may assert. Shorter limits fail on
// a busy CI machine (two cores, the race detector, other tests in parallel) without a bug behind
// them; TestNoWallClockAssertionUnderFiveSeconds enforces it over every _test.go file.
const MinWallClockAssertion = 5 * time.Second

// WaitFor polls cond until it holds, failing the test with what was awaited once timeout passes.
// The poll interval starts at 5 ms and doubles up to 200 ms, so a quick condition costs little
// and a slow one does not spin.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval) // a poll interval, not a wait for the thing itself
		interval = min(2*interval, 200*time.Millisecond)
	}
}
