package stats

// rateOutcome is what the comparisons of a conversion or count analysis say about one variation.
type rateOutcome struct {
	ci95               [2]float64
	chance, best, loss float64
	uplift             float64
	upliftCI95         [2]float64
}

// compareRates is the part of AnalyzeConversion and AnalyzeCount that does not depend on the
// model, given each variation's posterior on its axis t and its posterior mean: credible
// intervals, the comparisons among the variations that take part (those with users), and the
// uplift over the control when it takes part. toRate maps t back to the rate; upliftCI returns the
// 2.5% and 97.5% quantiles of X_t/X_c − 1 for the posteriors of a variation and the control.
func compareRates(posts []*posterior, means []float64, control int, takesPart func(i int) bool, lower bool,
	toRate func(t float64) float64, upliftCI func(t, c *posterior) (lo, hi float64)) []rateOutcome {
	out := make([]rateOutcome, len(posts))
	for i, p := range posts {
		out[i].ci95 = ordered(toRate(p.quantile(0.025)), toRate(p.quantile(0.975)))
	}
	active, activeControl := participants(len(posts), control, takesPart)
	cmp := compare(pick(posts, active), activeControl, lower)
	spread(out, active, cmp, func(o *rateOutcome, chance, best, loss float64) {
		o.chance, o.best, o.loss = chance, best, loss
	})
	if activeControl < 0 {
		return out
	}
	for _, i := range active {
		if i == control {
			continue
		}
		out[i].uplift = representable(means[i]/means[control] - 1)
		lo, hi := upliftCI(posts[i], posts[control])
		out[i].upliftCI95 = ordered(representable(lo), representable(hi))
	}
	return out
}
