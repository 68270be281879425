package web

// Experiments (issue 17, part A): the list, the create flow with a plain-language sample size and
// duration estimate, and the report page. The report shows the analyzer's stored result (the REST
// API's GET …/results) and its history (GET …/results/history) at a stated precision, so a test
// can compare the page with the JSON; charts are server-side SVG (web/chart).

import (
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"github.com/vexil-flags/vexil/services/roles/analysis"
	"github.com/vexil-flags/vexil/services/roles/web/chart"
)

func experimentURL(project, key string) string {
	return "/projects/" + url.PathEscape(project) + "/experiments/" + url.PathEscape(key)
}

// ---- list ----

type experimentsData struct {
	frame
	Experiments []*domain.Experiment
}

func (s *Server) experimentsPage(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	d := experimentsData{frame: s.baseFrame(c, "Experiments", "experiments", p)}
	if d.Experiments, err = s.cmds.Experiments(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	return s.render(c, http.StatusOK, "experiments", d)
}

// ---- create flow ----

// experimentForm is the create form's state, as typed (re-rendered on an error or an estimate).
type experimentForm struct {
	Key, Name, Hypothesis, Flag, Env, Seed string
	Variations                             []formVariation
	Control                                string
	Allocation                             string // percent of eligible users
	Primary                                string
	Secondary, Guardrail                   []string
	MDE, Baseline, StandardDeviation       string // the estimate's inputs
}

type formVariation struct {
	Key, Name string
	Include   bool
	Weight    string // percent of the experiment's traffic; all empty: an equal split
}

type newExperimentData struct {
	frame
	Form         experimentForm
	FlagKeys     []string
	FlagMissing  bool
	Goals        []*domain.Goal
	Plan         *analysis.PlanResponse
	PlanSentence string
	Err          *fieldErrors
}

// GET /projects/:project/experiments/new?flag=&environment=: the flag and environment are picked
// first (a GET form), since the variations to split come from the flag.
func (s *Server) newExperimentPage(c echo.Context) error {
	f := experimentForm{Flag: c.QueryParam("flag"), Env: c.QueryParam("environment"), Allocation: "100", MDE: "5", Baseline: "10"}
	return s.showNewExperiment(c, http.StatusOK, f, nil, nil, true)
}

func (s *Server) showNewExperiment(c echo.Context, status int, f experimentForm, fe *fieldErrors, plan *analysis.PlanResponse, fresh bool) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, "New experiment", "experiments", p)
	if f.Env == "" || p.Environments[f.Env] == nil {
		f.Env = fr.Environment
	}
	d := newExperimentData{frame: fr, Form: f, Err: fe, Plan: plan}
	if d.FlagKeys, err = s.cmds.FlagKeys(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	if d.Goals, err = s.cmds.Goals(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	if f.Flag != "" {
		flag, err := s.cmds.Flag(ctx, p.Key, f.Flag)
		switch {
		case domain.ErrorCode(err) == domain.ENotFound:
			d.FlagMissing = true
		case err != nil:
			return s.fail(c, err)
		case fresh:
			// Every variation in, the first one the control, an equal split.
			for i, v := range flag.Variations {
				d.Form.Variations = append(d.Form.Variations, formVariation{Key: v.Key, Name: v.Name, Include: true})
				if i == 0 {
					d.Form.Control = v.Key
				}
			}
			if d.Form.Name == "" {
				d.Form.Name = flag.Name + " experiment"
			}
		default:
			for i := range d.Form.Variations {
				if j := slices.IndexFunc(flag.Variations, func(v domain.Variation) bool { return v.Key == d.Form.Variations[i].Key }); j >= 0 {
					d.Form.Variations[i].Name = flag.Variations[j].Name
				}
			}
		}
	}
	if plan != nil {
		d.PlanSentence = planSentence(plan, f)
	}
	return s.render(c, status, "newexperiment", d)
}

// readExperimentForm reads the create form. Variation rows come back as v.<key>.include and
// v.<key>.weight for the keys listed in the hidden "variation" fields.
func readExperimentForm(c echo.Context) (experimentForm, error) {
	fp, err := c.FormParams()
	if err != nil {
		return experimentForm{}, domain.Invalid("form", "the form could not be read")
	}
	f := experimentForm{Key: strings.TrimSpace(fp.Get("key")), Name: strings.TrimSpace(fp.Get("name")), Hypothesis: strings.TrimSpace(fp.Get("hypothesis")),
		Flag: fp.Get("flag"), Env: fp.Get("environment"), Seed: strings.TrimSpace(fp.Get("seed")), Control: fp.Get("control"),
		Allocation: strings.TrimSpace(fp.Get("allocation")), Primary: fp.Get("primary_goal"), Secondary: fp["secondary_goals"], Guardrail: fp["guardrail_goals"],
		MDE: strings.TrimSpace(fp.Get("mde")), Baseline: strings.TrimSpace(fp.Get("baseline")), StandardDeviation: strings.TrimSpace(fp.Get("standard_deviation"))}
	for _, k := range fp["variation"] {
		f.Variations = append(f.Variations, formVariation{Key: k, Include: fp.Get("v."+k+".include") == "true",
			Weight: strings.TrimSpace(fp.Get("v." + k + ".weight"))})
	}
	return f, nil
}

// percentToBuckets turns a percentage typed in the form (up to three decimals) into bucket units.
func percentToBuckets(field, v string) (int, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return 0, domain.Invalid(field, "must be a percentage from 0 to 100")
	}
	return int(math.Round(f * domain.BucketCount / 100)), nil
}

// definition turns the form into the experiment's definition; weights and allocation become
// bucket units (percent × 1000).
func (f experimentForm) definition() (domain.ExperimentDefinition, error) {
	d := domain.ExperimentDefinition{Name: f.Name, Hypothesis: f.Hypothesis, Flag: f.Flag, Environment: f.Env, Seed: f.Seed,
		PrimaryGoal: f.Primary, SecondaryGoals: f.Secondary, GuardrailGoals: f.Guardrail}
	if d.SecondaryGoals == nil {
		d.SecondaryGoals = []string{}
	}
	if d.GuardrailGoals == nil {
		d.GuardrailGoals = []string{}
	}
	alloc := f.Allocation
	if alloc == "" {
		alloc = "100"
	}
	a, err := percentToBuckets("allocation", alloc)
	if err != nil {
		return d, err
	}
	d.Allocation = a
	for _, v := range f.Variations {
		if !v.Include {
			continue
		}
		ev := domain.ExperimentVariation{Variation: v.Key, Control: v.Key == f.Control}
		if v.Weight != "" {
			i := len(d.Variations)
			w, err := percentToBuckets(fmt.Sprintf("variations[%d].weight", i), v.Weight)
			if err != nil {
				return d, err
			}
			ev.Weight = w
		}
		d.Variations = append(d.Variations, ev)
	}
	return d, nil
}

// planInput reads the estimate's inputs: the minimum detectable effect and the baseline in
// percent, the standard deviation as typed.
func (f experimentForm) planRequest(goalKind domain.GoalKind, variations int, allocation float64) (analysis.PlanRequest, error) {
	in := analysis.PlanRequest{Flag: f.Flag, Environment: f.Env, Goal: f.Primary}
	mde, err := strconv.ParseFloat(f.MDE, 64)
	if err != nil || !(mde > 0) {
		return in, domain.Invalid("mde", "the minimum detectable effect must be a positive percentage, e.g. 5")
	}
	base, err := strconv.ParseFloat(f.Baseline, 64)
	if err != nil || !(base > 0) {
		return in, domain.Invalid("baseline", "the baseline must be a positive number")
	}
	in.MDE, in.Variations, in.Allocation = mde/100, variations, allocation
	in.Baseline = base
	if goalKind == domain.GoalConversion || goalKind == "" {
		in.Baseline = base / 100
	} else {
		sd, err := strconv.ParseFloat(f.StandardDeviation, 64)
		if err != nil || !(sd > 0) {
			return in, domain.Invalid("standard_deviation", "a count or value goal needs the metric's standard deviation per user")
		}
		in.StandardDeviation = sd
	}
	return in, nil
}

// planSentence says the plan in words a product person reads.
func planSentence(p *analysis.PlanResponse, f experimentForm) string {
	var b strings.Builder
	fmt.Fprintf(&b, "To detect a %s%% relative change", f.MDE)
	if f.Primary != "" {
		fmt.Fprintf(&b, " in %s", f.Primary)
	}
	fmt.Fprintf(&b, " with %.0f%% power at a %.0f%% significance level, you need about %s users per variation (%s in all).",
		p.Power*100, p.Alpha*100, chart.FormatValue(float64(p.UsersPerVariation), chart.Count), chart.FormatValue(float64(p.TotalUsers), chart.Count))
	traffic := "the traffic you gave"
	if p.MeasuredDailyUsers {
		traffic = "the flag's traffic over the last 7 days"
	}
	switch {
	case p.Days > 0:
		fmt.Fprintf(&b, " At %s (about %s users a day), with %s%% of them in the experiment, that takes about %s.",
			traffic, chart.FormatValue(p.DailyUsers, chart.Count), orDefault(f.Allocation, "100"), days(p.Days))
	default:
		fmt.Fprintf(&b, " The flag had no measured users in %s in the last 7 days, so the duration cannot be estimated yet.", f.Env)
	}
	return b.String()
}

func days(d float64) string {
	n := math.Ceil(d)
	if n <= 1 {
		return "1 day"
	}
	if n > 365 {
		return "more than a year"
	}
	return fmt.Sprintf("%.0f days", n)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// POST /projects/:project/experiments: action=estimate re-renders the form with the plan,
// otherwise the experiment is created as a draft and the report page opens.
func (s *Server) createExperiment(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	f, err := readExperimentForm(c)
	if err != nil {
		return s.fail(c, err)
	}
	def, err := f.definition()
	if err != nil {
		return s.showNewExperiment(c, http.StatusBadRequest, f, asFieldError(err), nil, false)
	}
	if c.FormValue("action") == "estimate" {
		var kind domain.GoalKind
		if f.Primary != "" {
			g, err := s.cmds.Goal(ctx, project, f.Primary)
			if err != nil && domain.ErrorCode(err) != domain.ENotFound {
				return s.fail(c, err)
			}
			if g != nil {
				kind = g.Kind
			}
		}
		in, err := f.planRequest(kind, max(len(def.Variations), 2), float64(def.Allocation)/domain.BucketCount)
		var plan *analysis.PlanResponse
		if err == nil {
			plan, err = s.cmds.PlanExperiment(ctx, project, in)
		}
		if fe := asFieldError(err); fe != nil {
			return s.showNewExperiment(c, http.StatusBadRequest, f, fe, nil, false)
		}
		if err != nil {
			return s.fail(c, err)
		}
		return s.showNewExperiment(c, http.StatusOK, f, nil, plan, false)
	}
	e, err := s.cmds.CreateExperiment(ctx, meta(c), domain.NewExperiment{Project: project, Key: f.Key, ExperimentDefinition: def})
	if fe := asFieldError(err); fe != nil {
		return s.showNewExperiment(c, httpStatus(err), f, fe, nil, false)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, experimentURL(project, e.Key)+"?done="+url.QueryEscape("Experiment created as a draft: start it when ready."))
}

// ---- report ----

type experimentData struct {
	frame
	Experiment *domain.Experiment
	Report     *analysis.Report
	NoReport   string // why there is no report yet
	SRM        *srmView
	Goals      []goalView
	Variations []string // the experiment's variations, the control first (conclude's choices)
	Err        *fieldErrors
}

type srmView struct {
	Rows    []srmRow
	PValue  string
	Unknown int64
}

type srmRow struct {
	Variation          string
	Observed           int64
	ObservedShare      string
	Expected           string
	ExpectedShare      string
	ExpectedUsersExact float64
}

type goalView struct {
	Goal, Name, Kind, Direction, Role string
	Rows                              []variationRow
	EstimateChart, UpliftChart        template.HTML
	ChanceChart, UpliftHistoryChart   template.HTML
	HistoryPoints                     int
	// Quantile names the value goal's quantile ("p90") when it has one; QuantileRows are its
	// figures per variation.
	Quantile     string
	QuantileRows []quantileRow
}

// quantileRow is one variation's quantile of a value goal as shown: values with four decimals,
// the change against the control in percent with two.
type quantileRow struct {
	Variation                     string
	Control                       bool
	Estimate, CILow, CIHigh       string
	Change, ChangeLow, ChangeHigh string
	PValue                        string
}

// variationRow is one variation's figures as shown. Precision: rates and uplifts in percent with
// two decimals; means with four decimals; probabilities in percent with one decimal; expected
// loss with six decimals on the metric's own scale (docs/console-analytics.md).
type variationRow struct {
	Variation                     string
	Control                       bool
	Users                         int64
	Estimate, CILow, CIHigh       string
	Uplift, UpliftLow, UpliftHigh string
	Chance, Best, Loss            string
}

// metricFormat is how a goal kind's estimates are written: rates in percent, means as decimals.
func metricFormat(kind domain.GoalKind) func(float64) string {
	if kind == domain.GoalConversion {
		return func(v float64) string { return strconv.FormatFloat(v*100, 'f', 2, 64) + "%" }
	}
	return func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
}

func percent(v float64, decimals int) string {
	return strconv.FormatFloat(v*100, 'f', decimals, 64) + "%"
}

// historyWindow is how far back the evolution charts read: the experiment's whole run.
func historyWindow(e *domain.Experiment, now time.Time) (time.Time, time.Time) {
	from := e.CreatedAt
	if !e.StartedAt.IsZero() {
		from = e.StartedAt
	}
	return from.Add(-time.Minute), now.Add(time.Minute)
}

func (s *Server) experimentPage(c echo.Context) error {
	return s.showExperiment(c, http.StatusOK, nil)
}

func (s *Server) showExperiment(c echo.Context, status int, fe *fieldErrors) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	e, err := s.cmds.Experiment(ctx, p.Key, c.Param("experiment"))
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, "Experiment: "+e.Name, "experiments", p)
	fr.Environment = e.Environment
	d := experimentData{frame: fr, Experiment: e, Err: fe}
	for _, v := range e.Variations {
		if v.Control {
			d.Variations = append([]string{v.Variation}, d.Variations...)
		} else {
			d.Variations = append(d.Variations, v.Variation)
		}
	}
	r, err := s.cmds.ExperimentReport(ctx, p.Key, e.Key)
	switch {
	case domain.ErrorCode(err) == domain.ENotFound:
		d.NoReport = "No analysis yet: start the experiment, let exposures and goals come in, then press Analyse now (the analyzer also runs on its own schedule)."
		return s.render(c, status, "experiment", d)
	case domain.ErrorCode(err) == domain.EUnavailable:
		d.NoReport = domain.ErrorMessage(err)
		return s.render(c, status, "experiment", d)
	case err != nil:
		return s.fail(c, err)
	}
	d.Report = r
	d.SRM = srmOf(e, r.SRM)
	goalNames := map[string]string{}
	if goals, err := s.cmds.Goals(ctx, p.Key); err == nil {
		for _, g := range goals {
			goalNames[g.Key] = g.Name
		}
	}
	accent := envColor(p, e.Environment)
	from, to := historyWindow(e, time.Now())
	for gi, g := range r.Goals {
		history, err := s.cmds.ExperimentHistory(ctx, p.Key, e.Key, g.Goal, from, to)
		if err != nil {
			return s.fail(c, err)
		}
		d.Goals = append(d.Goals, goalViewOf(gi, g, goalNames[g.Goal], history, accent))
	}
	return s.render(c, status, "experiment", d)
}

// srmOf shows the sample-ratio check as observed against expected, per variation in the
// experiment's order (the analyzer's); nil unless there is a mismatch.
func srmOf(e *domain.Experiment, srm stats.SRMResult) *srmView {
	if !srm.Mismatch {
		return nil
	}
	v := &srmView{PValue: strconv.FormatFloat(srm.PValue, 'g', 3, 64), Unknown: srm.Unknown}
	var expectedTotal float64
	for _, x := range srm.Expected {
		expectedTotal += x
	}
	for i, ev := range e.Variations {
		if i >= len(srm.Observed) || i >= len(srm.Expected) {
			break
		}
		row := srmRow{Variation: ev.Variation, Observed: srm.Observed[i], Expected: strconv.FormatFloat(srm.Expected[i], 'f', 1, 64),
			ExpectedUsersExact: srm.Expected[i]}
		if srm.Total > 0 {
			row.ObservedShare = percent(float64(srm.Observed[i])/float64(srm.Total), 1)
		}
		if expectedTotal > 0 {
			row.ExpectedShare = percent(srm.Expected[i]/expectedTotal, 1)
		} else {
			row.ExpectedShare = percent(float64(ev.Weight)/domain.BucketCount, 1)
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

func goalViewOf(index int, g analysis.GoalResult, name string, history []analysis.Point, accent string) goalView {
	mf := metricFormat(g.Kind)
	gv := goalView{Goal: g.Goal, Name: name, Kind: string(g.Kind), Direction: string(g.Direction), Role: g.Role}
	for i, p := range history { // one point per variation per analysis, in time order
		if i == 0 || !p.ComputedAt.Equal(history[i-1].ComputedAt) {
			gv.HistoryPoints++
		}
	}
	var estimates, uplifts []chart.Row
	var controlEstimate *float64
	for _, v := range g.Variations {
		row := variationRow{Variation: v.Variation, Control: v.Control, Users: v.Users, Estimate: mf(v.Estimate), CILow: mf(v.CI95[0]), CIHigh: mf(v.CI95[1]),
			Best: percent(v.ProbabilityToBeBest, 1), Loss: strconv.FormatFloat(v.ExpectedLoss, 'f', 6, 64)}
		if !v.Control {
			row.Uplift, row.UpliftLow, row.UpliftHigh = percent(v.Uplift, 2), percent(v.UpliftCI95[0], 2), percent(v.UpliftCI95[1], 2)
			row.Chance = percent(v.ChanceToBeatControl, 1)
			uplifts = append(uplifts, chart.Row{Label: v.Variation, Estimate: v.Uplift, Low: v.UpliftCI95[0], High: v.UpliftCI95[1]})
		} else {
			est := v.Estimate
			controlEstimate = &est
		}
		gv.Rows = append(gv.Rows, row)
		if q := v.Quantile; q != nil {
			gv.Quantile = "p" + strconv.FormatFloat(100*q.Quantile, 'f', -1, 64)
			qr := quantileRow{Variation: v.Variation, Control: v.Control, Estimate: mf(q.Estimate), CILow: mf(q.CI[0]), CIHigh: mf(q.CI[1])}
			if f := q.Frequentist; f != nil {
				qr.Change, qr.ChangeLow, qr.ChangeHigh = percent(f.Estimate, 2), percent(f.CI[0], 2), percent(f.CI[1], 2)
				qr.PValue = strconv.FormatFloat(f.PValue, 'g', 3, 64)
				if !f.Valid {
					qr.Change, qr.ChangeLow, qr.ChangeHigh, qr.PValue = "not enough data", "—", "—", "—"
				}
			}
			gv.QuantileRows = append(gv.QuantileRows, qr)
		}
		estimates = append(estimates, chart.Row{Label: v.Variation, Estimate: v.Estimate, Low: v.CI95[0], High: v.CI95[1], Highlight: v.Control})
	}
	format := chart.Decimal
	if g.Kind == domain.GoalConversion {
		format = chart.Percent
	}
	id := fmt.Sprintf("g%d", index)
	gv.EstimateChart = chart.Interval{ID: id + "-estimates", Title: "Estimate per variation, with 95% intervals",
		Desc: fmt.Sprintf("%s: each variation's %s with its 95%% interval; the dashed line is the control.", g.Goal, kindNoun(g.Kind)),
		Rows: estimates, Format: format, Reference: controlEstimate, Accent: accent}.HTML()
	if len(uplifts) > 0 {
		zero := 0.0
		gv.UpliftChart = chart.Interval{ID: id + "-uplift", Title: "Uplift against the control, with 95% intervals",
			Desc: fmt.Sprintf("%s: each variation's relative change against the control; the dashed line is no change.", g.Goal),
			Rows: uplifts, Format: chart.Percent, Reference: &zero, Accent: accent}.HTML()
	}
	if len(history) > 0 {
		gv.ChanceChart, gv.UpliftHistoryChart = evolutionCharts(id, g, history, accent)
	}
	return gv
}

func kindNoun(k domain.GoalKind) string {
	switch k {
	case domain.GoalConversion:
		return "conversion rate"
	case domain.GoalCount:
		return "events per user"
	}
	return "value per user"
}

// evolutionCharts draws chance to beat control and uplift of every non-control variation over the
// analyses. Uplift at each analysis is the variation's estimate over the control's, minus one (the
// history stores estimates, not uplifts).
func evolutionCharts(id string, g analysis.GoalResult, history []analysis.Point, accent string) (template.HTML, template.HTML) {
	control := ""
	for _, v := range g.Variations {
		if v.Control {
			control = v.Variation
		}
	}
	controlAt := map[time.Time]float64{}
	for _, p := range history {
		if p.Variation == control {
			controlAt[p.ComputedAt] = p.Estimate
		}
	}
	chance := map[string]*chart.Series{}
	uplift := map[string]*chart.Series{}
	var order []string
	for _, p := range history {
		if p.Variation == control {
			continue
		}
		if chance[p.Variation] == nil {
			chance[p.Variation] = &chart.Series{Name: p.Variation}
			uplift[p.Variation] = &chart.Series{Name: p.Variation}
			order = append(order, p.Variation)
		}
		chance[p.Variation].Points = append(chance[p.Variation].Points, chart.Point{T: p.ComputedAt, V: p.ChanceToBeatControl})
		if c, ok := controlAt[p.ComputedAt]; ok && c != 0 {
			uplift[p.Variation].Points = append(uplift[p.Variation].Points, chart.Point{T: p.ComputedAt, V: p.Estimate/c - 1})
		}
	}
	if len(order) == 0 {
		return "", ""
	}
	from, to := history[0].ComputedAt, history[len(history)-1].ComputedAt
	if !to.After(from) {
		from, to = from.Add(-time.Minute), to.Add(time.Minute)
	}
	var cs, us []chart.Series
	for _, v := range order {
		cs = append(cs, *chance[v])
		us = append(us, *uplift[v])
	}
	threshold := analysis.WinThreshold
	zero := 0.0
	ch := chart.Line{ID: id + "-chance-history", Title: "Chance to beat control over time",
		Desc: fmt.Sprintf("%s: each variation's chance to beat the control at every analysis; the dashed line is the %.0f%% needed to call a winner.", g.Goal, threshold*100),
		From: from, To: to, Series: cs, Format: chart.Percent, YMin: 0, YMax: 1, Reference: &threshold, Accent: accent}.HTML()
	uh := chart.Line{ID: id + "-uplift-history", Title: "Uplift over time",
		Desc: fmt.Sprintf("%s: each variation's relative change against the control at every analysis.", g.Goal),
		From: from, To: to, Series: us, Format: chart.Percent, Reference: &zero, Accent: accent}.HTML()
	return ch, uh
}

// POST /projects/:project/experiments/:experiment/{start,stop,analyze,conclude}
func (s *Server) experimentAction(c echo.Context) error {
	ctx := c.Request().Context()
	project, key, action := c.Param("project"), c.Param("experiment"), c.Param("action")
	m := meta(c)
	expected := versionField(c)
	var done string
	var err error
	switch action {
	case "start":
		_, err = s.cmds.StartExperiment(ctx, m, project, key, expected)
		done = "Experiment started: its split is served from now on."
	case "stop":
		_, err = s.cmds.StopExperiment(ctx, m, project, key, expected)
		done = "Experiment stopped: the flag's own targeting serves everyone again."
	case "analyze":
		err = s.cmds.AnalyzeExperiment(ctx, project, key)
		done = "Analysed now."
	case "conclude":
		variation := c.FormValue("variation")
		apply := c.FormValue("apply_to_flag") == "true"
		_, err = s.cmds.ConcludeExperiment(ctx, m, project, key, expected, variation, m.Reason, apply)
		done = "Concluded with " + variation + "."
		if apply {
			done += " It is now the flag's default serve in the experiment's environment."
		}
	default:
		return s.errorPage(c, http.StatusNotFound, fmt.Sprintf("There is no experiment action %q.", action))
	}
	var de *domain.Error
	if errors.As(err, &de) && (de.Code == domain.EInvalid || de.Code == domain.EConflict) {
		msg := de.Message
		if de.Code == domain.EConflict && de.Field == "" {
			msg = "Someone changed this experiment meanwhile; the page shows it as it is now. " + msg
		}
		return s.showExperiment(c, httpStatus(err), &fieldErrors{Field: orDefault(de.Field, action), Message: msg})
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, experimentURL(project, key)+"?done="+url.QueryEscape(done))
}
