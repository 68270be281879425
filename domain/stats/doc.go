// Package stats holds the statistics of experiments: pure, deterministic functions from the
// sufficient statistics of each variation (users, conversions, sums, events) to what a report
// shows and what auto-ops acts on. It imports the standard library and gonum only.
//
// # Models
//
//   - Conversion goals (AnalyzeConversion): Beta-Binomial, prior Beta(1, 1) unless configured.
//   - Value goals (AnalyzeValue): normal model of each mean per user and of the absolute and
//     relative differences to the control, optional normal priors on the differences, and
//     Welch's t-test beside it.
//   - Count goals (AnalyzeCount): Gamma-Poisson, prior Gamma(1, 0.001) unless configured.
//   - Sample-ratio mismatch (SampleRatioMismatch): Pearson's chi-square test of the split.
//
// Every model takes the goal's domain.GoalDirection, so that goals to decrease (errors, latency)
// are judged the right way round.
//
// # Method: deterministic quadrature, no Monte Carlo
//
// Probabilities that involve several posteriors (chance to beat control, probability to be best,
// expected loss, the quantiles of a ratio) are one-dimensional integrals of densities f_i and
// CDFs F_i, for example P(best i) = ∫ f_i Π_{j≠i} F_j. They are computed by composite
// Gauss–Legendre quadrature, never by sampling, so the same input always gives the same output
// and there is no sampling noise to mistake for a change.
//
// The integrals are taken on an axis on which every posterior density is smooth and bounded: the
// logit of a conversion rate, the log of a Poisson rate, the value itself for a normal. On the
// rate axis a Beta(0.5, b) density is unbounded at zero (a variation with no conversions under a
// Jeffreys prior), and Gauss–Legendre converges slowly there; on the logit axis the same density
// decays like e^{t/2} and the rule converges geometrically.
//
// Each posterior gets a window on that axis holding all but 1e-15 of its mass on each side: it
// starts at the mean ± 8 standard deviations (exact ψ and ψ' moments of logit(Beta) and
// log(Gamma)) and widens until the exact tail, from the regularized incomplete beta or gamma
// function (gonum mathext), is below 1e-15, which matters for skewed posteriors with few
// conversions. This is the "range around the posterior mass" of the closed-form-versus-
// integration trade-off: it adapts to millions of users (a window a few thousandths wide) as well
// as to a handful.
//
// The quadrature grid is cut at every window's ends. Each piece starts with 10-point
// Gauss–Legendre panels two standard deviations wide of the narrowest posterior that covers it,
// and a panel is halved until, for every density that covers it, the rule agrees with the sum
// over the halves to 1e-11 (the halves are then kept, with an error about 2^-20 of that; a panel
// that agrees to 1e-14 is kept whole). So a precise variation next to a vague one is resolved, and
// so is a skewed density whose shape changes much faster than its standard deviation (a Beta
// with a prior parameter of 0.001). Pieces that no window covers hold no mass and get no nodes.
//
// CDFs at the nodes come from a table per posterior: the exact CDF at the window's start, then
// 5-point Gauss–Legendre integrals of the density over intervals refined the same way (to 1e-12
// between an interval and its halves), the whole rescaled so that it ends exactly at 1 minus the
// exact upper tail. A CDF between anchors adds the integral from the nearest anchor. This costs a
// few density evaluations instead of an incomplete beta function per node (the latter takes
// microseconds at a million users), and makes every probability consistent with the same density.
// Densities near the mode are written relative to the mode, so that rounding grows like √n
// rather than n.
//
// Closed forms exist for two variations, and the tests use them as references, but they do not
// serve at scale: for two Betas Evan Miller's sum has as many terms as conversions and loses
// precision at millions of users, and for two Gammas the Beta relation needs the incomplete beta
// function at parameters of hundreds of millions, where gonum's (a continued fraction stopped at
// 300 terms) is off by 6e-8. The quadrature has neither problem.
//
// # Accuracy
//
// Truncation leaves out at most 2e-15 of mass per posterior, and the refinement bounds the
// quadrature error per panel as above. In practice the results agree with exact references to
// about 1e-12 (Evan Miller's sum with up to 10^5 conversions, a 30-digit mpmath evaluation of it
// at a million users, the binomial identity for Gammas), change by less than 1e-9 when every
// tolerance is tightened a thousandfold (checked while developing, on skewed and tiny-prior
// cases too), and the tests require 1e-9 for chance to beat control and two-variation expected
// loss, four Monte Carlo standard errors against two million draws for probabilities to be best
// and expected losses of three and more variations, and 1e-6 for probabilities to be best
// summing to 1 (they are normalised, and sum to 1 to rounding). Counts are accepted up to
// MaxUsers users per variation; the rounding of the log density then stays near 1e-11.
//
// Credible intervals are equal-tailed: posterior 2.5% and 97.5% quantiles by Newton's method on
// the same CDF table (agreeing with gonum's Beta and Gamma quantiles to about 1e-12). The uplift
// interval of conversions inverts the exact CDF of the ratio of two Betas,
// P(X_t ≤ r X_c) = ∫ f_c(y) F_t(r y) dy, by safeguarded Newton on log r; that of counts is exact
// through the Beta relation; that of values uses the delta method (documented in AnalyzeValue).
// The ratio integral is taken on the logit axis of the variation with the larger rate at the
// point of comparison, so that the other's density is never squeezed (see ratioGrid).
//
// Performance (bench_test.go, two shared cores): a conversion goal with three variations of a
// million users each takes about 2 ms, a count goal 0.4 ms, a value goal 0.06 ms; an experiment
// of three variations and five goals about 5 ms, against a budget of 100 ms.
//
// # Degenerate inputs
//
// No input that passes validation yields NaN or an infinity: a bound that is honestly beyond the
// range of a float64 (the uplift over a control whose rate is all but zero, the t statistic of
// two constant samples) is reported as ±math.MaxFloat64. Each Analyze function documents
// what it returns for no users, no conversions or events, everything converted, identical
// variations, a single variation, a single user and zero variance. Invalid input (negative
// counts, conversions above users, a control out of range, a weight that is not positive, a
// prior out of range) returns a *domain.Error with code domain.EInvalid naming the field.
package stats
