package stats

import (
	"github.com/vexil-flags/vexil/domain"
)

// Every model takes the goal's domain.GoalDirection. GoalIncrease (also the empty direction, as for
// goals) means higher is better; GoalDecrease means lower is better (errors, latency, churn): then
// the chance to beat control is the probability that the variation's metric is lower than the
// control's, the best variation is the one with the lowest metric, and the expected loss of
// choosing a variation is how much higher its metric is expected to be than the lowest. Uplifts and
// differences keep their sign (variation over control, minus one); only their reading flips.

// direction validates d and normalises the empty direction to GoalIncrease.
func direction(d domain.GoalDirection) (domain.GoalDirection, error) {
	switch d {
	case "", domain.GoalIncrease:
		return domain.GoalIncrease, nil
	case domain.GoalDecrease:
		return d, nil
	}
	return "", domain.Invalid("direction", "goal direction must be %q or %q, got %q", domain.GoalIncrease, domain.GoalDecrease, d)
}
