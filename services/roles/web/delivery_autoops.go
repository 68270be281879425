package web

// Auto-ops rules and webhook triggers pages, and the small SVG chart of an auto-ops rule's
// firings (the evidence series).

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// ---- auto-ops rules ----

type autoOpsForm struct {
	Name, Flag, Environment, Goal, Variation, Control, Comparison, Threshold, MinSample, MinProbability, Action, Reason string
	Enabled                                                                                                             bool
}

type autoOpsData struct {
	deliveryFrame
	Rules []*domain.AutoOpsRule
	Goals []*domain.Goal
	Next  string
	Form  autoOpsForm
}

func (s *Server) autoOpsPage(c echo.Context) error {
	return s.showAutoOps(c, http.StatusOK, autoOpsForm{Comparison: string(domain.AutoOpsGreaterThan), MinSample: "1000", MinProbability: "0.95",
		Action: string(domain.AutoOpsTurnOff), Enabled: true, Environment: c.QueryParam("env"), Flag: c.QueryParam("flag")}, nil)
}

func (s *Server) showAutoOps(c echo.Context, status int, form autoOpsForm, fe *fieldErrors) error {
	d, err := s.deliveryBase(c, "Auto-ops rules", "autoops")
	if err != nil {
		return s.fail(c, err)
	}
	d.Err = fe
	ctx := c.Request().Context()
	rules, next, err := s.cmds.AutoOpsRules(ctx, delivery.ListQuery{Project: d.Project.Key, Flag: c.QueryParam("flag"), Cursor: c.QueryParam("cursor"), Limit: deliveryListSize})
	if err != nil {
		if domain.ErrorCode(err) == domain.EInvalid {
			return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
		}
		return s.fail(c, err)
	}
	goals, err := s.cmds.AutoOpsGoals(ctx, d.Project.Key)
	if err != nil {
		return s.fail(c, err)
	}
	if form.Environment == "" {
		form.Environment = d.Environment
	}
	return s.render(c, status, "autoops", autoOpsData{deliveryFrame: d, Rules: rules, Goals: goals, Next: next, Form: form})
}

func (s *Server) createAutoOps(c echo.Context) error {
	form := autoOpsForm{Name: strings.TrimSpace(c.FormValue("name")), Flag: strings.TrimSpace(c.FormValue("flag")), Environment: c.FormValue("environment"),
		Goal: c.FormValue("goal"), Variation: strings.TrimSpace(c.FormValue("variation")), Control: strings.TrimSpace(c.FormValue("control")),
		Comparison: c.FormValue("comparison"), Threshold: strings.TrimSpace(c.FormValue("threshold")), MinSample: strings.TrimSpace(c.FormValue("min_sample")),
		MinProbability: strings.TrimSpace(c.FormValue("min_probability")), Action: c.FormValue("action"), Enabled: c.FormValue("enabled") == "true",
		Reason: c.FormValue(reasonField)}
	rerender := func(fe *fieldErrors) error { return s.showAutoOps(c, http.StatusBadRequest, form, fe) }
	threshold, err := strconv.ParseFloat(form.Threshold, 64)
	if err != nil {
		return rerender(&fieldErrors{Field: "threshold", Message: "the threshold must be a number, e.g. 0.05"})
	}
	minSample, err := strconv.ParseInt(form.MinSample, 10, 64)
	if err != nil {
		return rerender(&fieldErrors{Field: "min_sample", Message: "the minimum sample must be a whole number of users"})
	}
	minProb, err := strconv.ParseFloat(form.MinProbability, 64)
	if err != nil {
		return rerender(&fieldErrors{Field: "min_probability", Message: "the minimum probability must be a number between 0 and 1, e.g. 0.95"})
	}
	r, err := s.cmds.CreateAutoOpsRule(c.Request().Context(), meta(c), app.CreateAutoOpsRule{Project: c.Param("project"), Flag: form.Flag, Env: form.Environment,
		Enabled: form.Enabled, AutoOpsDefinition: domain.AutoOpsDefinition{Name: form.Name,
			Metric:     domain.AutoOpsMetric{Goal: form.Goal, Measure: domain.MeasureRate, Variation: form.Variation, Control: form.Control},
			Comparison: domain.AutoOpsComparison(form.Comparison), Threshold: threshold, MinSample: minSample, MinProbability: minProb,
			Action: domain.AutoOpsAction(form.Action)}})
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(r.Project, "autoops/"+url.PathEscape(r.ID), "Auto-ops rule created."))
}

type firingView struct {
	delivery.Firing
	Chart template.HTML // the arms' rates, as a bar chart
}

type autoOpsRuleData struct {
	deliveryFrame
	Rule    *domain.AutoOpsRule
	EnvName string
	Firings []firingView
	Series  template.HTML // the metric at each firing against the threshold
}

// maxFiringsShown bounds the firings on a rule's page (the API pages through all of them).
const maxFiringsShown = 50

func (s *Server) autoOpsRulePage(c echo.Context) error {
	d, err := s.deliveryBase(c, "Auto-ops rule", "autoops")
	if err != nil {
		return s.fail(c, err)
	}
	ctx := c.Request().Context()
	r, err := s.cmds.AutoOpsRule(ctx, d.Project.Key, c.Param("id"))
	if err != nil {
		return s.fail(c, err)
	}
	firings, err := s.cmds.AutoOpsFirings(ctx, d.Project.Key, r.ID, maxFiringsShown)
	if err != nil {
		return s.fail(c, err)
	}
	color := environmentColor(d.Project, r.Environment)
	out := autoOpsRuleData{deliveryFrame: d, Rule: r, EnvName: envName(d.Project, r.Environment)}
	for i, f := range firings {
		out.Firings = append(out.Firings, firingView{Firing: f, Chart: armsChart(fmt.Sprintf("firing-%d", i), f.Evidence, color)})
	}
	out.Series = evidenceChart("series", firings, r.Threshold, color)
	return s.render(c, http.StatusOK, "autoopsrule", out)
}

func (s *Server) autoOpsAction(c echo.Context) error {
	project, id, action := c.Param("project"), c.Param("id"), c.Param("action")
	if action != "enable" && action != "disable" {
		return s.errorPage(c, http.StatusNotFound, "There is no such action on an auto-ops rule.")
	}
	_, err := s.cmds.SetAutoOpsRuleEnabled(c.Request().Context(), meta(c), versionField(c), project, id, action == "enable")
	if err != nil {
		return s.refuse(c, err, func(fe *fieldErrors) error { return s.errorPage(c, http.StatusBadRequest, fe.Message) })
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(project, "autoops/"+url.PathEscape(id), "Rule "+action+"d."))
}

// ---- webhook triggers ----

type triggerForm struct {
	Name, Flag, Environment, Action, Reason string
}

// shownSecret is a trigger's URL and secret, on the page only in the answer that made them.
type shownSecret struct {
	Name, URL, Secret, Curl string
}

type triggersData struct {
	deliveryFrame
	Triggers []delivery.TriggerSummary
	Next     string
	Form     triggerForm
	Secret   *shownSecret
}

func (s *Server) triggersPage(c echo.Context) error {
	return s.showTriggers(c, http.StatusOK, triggerForm{Action: string(domain.TriggerOff), Environment: c.QueryParam("env"), Flag: c.QueryParam("flag")}, nil, nil)
}

func (s *Server) showTriggers(c echo.Context, status int, form triggerForm, fe *fieldErrors, secret *shownSecret) error {
	d, err := s.deliveryBase(c, "Webhook triggers", "triggers")
	if err != nil {
		return s.fail(c, err)
	}
	d.Err = fe
	list, next, err := s.cmds.Triggers(c.Request().Context(), delivery.ListQuery{Project: d.Project.Key, Flag: c.QueryParam("flag"), Cursor: c.QueryParam("cursor"), Limit: deliveryListSize})
	if err != nil {
		if domain.ErrorCode(err) == domain.EInvalid {
			return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
		}
		return s.fail(c, err)
	}
	if form.Environment == "" {
		form.Environment = d.Environment
	}
	if secret != nil {
		d.Flash = ""
	}
	return s.render(c, status, "triggers", triggersData{deliveryFrame: d, Triggers: list, Next: next, Form: form, Secret: secret})
}

// secretShown is the URL (as this request reached the console, like the API's answer) and the
// secret of a trigger just created or rotated.
func secretShown(c echo.Context, t app.TriggerWithSecret) *shownSecret {
	u := c.Scheme() + "://" + c.Request().Host + HooksPath + t.Trigger.ID
	return &shownSecret{Name: t.Trigger.Name, URL: u, Secret: t.Secret,
		Curl: fmt.Sprintf("curl -X POST -H 'X-Vexil-Trigger-Secret: %s' %s", t.Secret, u)}
}

func (s *Server) createTrigger(c echo.Context) error {
	form := triggerForm{Name: strings.TrimSpace(c.FormValue("name")), Flag: strings.TrimSpace(c.FormValue("flag")), Environment: c.FormValue("environment"),
		Action: c.FormValue("action"), Reason: c.FormValue(reasonField)}
	t, err := s.cmds.CreateTrigger(c.Request().Context(), meta(c), app.CreateTrigger{Project: c.Param("project"), Name: form.Name, Flag: form.Flag,
		Env: form.Environment, Action: domain.TriggerAction(form.Action)})
	if err != nil {
		return s.refuse(c, err, func(fe *fieldErrors) error { return s.showTriggers(c, http.StatusBadRequest, form, fe, nil) })
	}
	// Answered here rather than redirected: the secret must never be in a URL or stored to show later.
	return s.showTriggers(c, http.StatusCreated, triggerForm{Action: string(domain.TriggerOff)}, nil, secretShown(c, t))
}

func (s *Server) triggerAction(c echo.Context) error {
	ctx := c.Request().Context()
	project, id, action := c.Param("project"), c.Param("id"), c.Param("action")
	refused := func(fe *fieldErrors) error { return s.errorPage(c, http.StatusBadRequest, fe.Message) }
	switch action {
	case "rotate":
		t, err := s.cmds.RotateTrigger(ctx, meta(c), versionField(c), project, id)
		if err != nil {
			return s.refuse(c, err, refused)
		}
		return s.showTriggers(c, http.StatusOK, triggerForm{Action: string(domain.TriggerOff)}, nil, secretShown(c, t))
	case "enable", "disable":
		t, err := s.cmds.SetTriggerEnabled(ctx, meta(c), versionField(c), project, id, action == "enable")
		if err != nil {
			return s.refuse(c, err, refused)
		}
		return c.Redirect(http.StatusSeeOther, deliveryURL(project, "triggers", fmt.Sprintf("Trigger %q %sd.", t.Name, action)))
	}
	return s.errorPage(c, http.StatusNotFound, "There is no such action on a trigger.")
}

// ---- charts ----

// environmentColor is the colour charts of an environment are drawn in: the environment's own
// when it is a plain colour, else the console's accent.
func environmentColor(p *domain.Project, env string) string {
	const accent = "#1a7f52"
	if p == nil || p.Environments[env] == nil {
		return accent
	}
	col := strings.TrimSpace(p.Environments[env].Color)
	if col == "" || len(col) > 32 || strings.ContainsAny(col, "<>\"'&;(){}") {
		return accent
	}
	return col
}

// chart geometry of the evidence charts, in SVG units.
const (
	chartW, chartH         = 560.0, 200.0
	padL, padR, padT, padB = 56.0, 16.0, 16.0, 36.0
	barChartW, barH        = 360.0, 22.0
)

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// evidenceChart draws the metric each firing measured, oldest to newest, against the rule's
// threshold (dashed). It is an image with a title and a description for screen readers; the table
// beside it holds the same numbers.
func evidenceChart(id string, firings []delivery.Firing, threshold float64, color string) template.HTML {
	if len(firings) == 0 {
		return ""
	}
	pts := slices.Clone(firings)
	slices.Reverse(pts) // oldest first
	lo, hi := threshold, threshold
	for _, f := range pts {
		lo, hi = math.Min(lo, f.Evidence.Value), math.Max(hi, f.Evidence.Value)
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	margin := (hi - lo) * 0.1
	lo, hi = lo-margin, hi+margin
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	x := func(i int) float64 {
		if len(pts) == 1 {
			return padL + plotW/2
		}
		return padL + plotW*float64(i)/float64(len(pts)-1)
	}
	y := func(v float64) float64 { return padT + plotH*(hi-v)/(hi-lo) }
	var b strings.Builder
	desc := fmt.Sprintf("%d firing(s); the threshold is %s. ", len(pts), fmtNum(threshold))
	for _, f := range pts {
		desc += fmt.Sprintf("%s: %s. ", f.FiredAt.UTC().Format("2006-01-02 15:04 UTC"), fmtNum(f.Evidence.Value))
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, id, id)
	fmt.Fprintf(&b, `<title id="%s-t">Metric at each firing against the threshold</title><desc id="%s-d">%s</desc>`, id, id, template.HTMLEscapeString(desc))
	// axes and their labels
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padL, padT, padL, padT+plotH)
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g" text-anchor="end">%s</text>`, padL-6, y(v)+4, fmtNum(v))
	}
	fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g">%s</text>`, padL, chartH-8, pts[0].FiredAt.UTC().Format("2006-01-02 15:04"))
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g" text-anchor="end">%s</text>`, padL+plotW, chartH-8, pts[len(pts)-1].FiredAt.UTC().Format("2006-01-02 15:04"))
	}
	// the threshold
	fmt.Fprintf(&b, `<line class="threshold" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/><text class="tick" x="%g" y="%.1f" text-anchor="end">threshold %s</text>`,
		padL, y(threshold), padL+plotW, y(threshold), padL+plotW, y(threshold)-4, fmtNum(threshold))
	// the series
	if len(pts) > 1 {
		var path strings.Builder
		for i, f := range pts {
			fmt.Fprintf(&path, " %.1f,%.1f", x(i), y(f.Evidence.Value))
		}
		fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" points="%s"/>`, template.HTMLEscapeString(color), strings.TrimSpace(path.String()))
	}
	for i, f := range pts {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, x(i), y(f.Evidence.Value), template.HTMLEscapeString(color))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above from numbers and escaped text only
}

// armsChart draws one firing's arms: the rate of the variation and of the control, as horizontal
// bars on one scale, each labelled with its rate and exposed users.
func armsChart(id string, ev domain.AutoOpsEvidence, color string) template.HTML {
	type arm struct {
		label string
		a     domain.AutoOpsArm
	}
	arms := []arm{{"variation", ev.Treatment}}
	if ev.Control != nil {
		arms = append(arms, arm{"control", *ev.Control})
	}
	hi := 0.0
	for _, a := range arms {
		hi = math.Max(hi, math.Abs(a.a.Rate))
	}
	if hi == 0 {
		hi = 1
	}
	const labelW, gap = 80.0, 6.0
	h := float64(len(arms))*(barH+gap) + gap
	var b strings.Builder
	desc := ""
	for _, a := range arms {
		desc += fmt.Sprintf("%s: rate %s among %d exposed users. ", a.label, fmtNum(a.a.Rate), a.a.Exposed)
	}
	fmt.Fprintf(&b, `<svg class="chart arms" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg">`, barChartW, h, id, id)
	fmt.Fprintf(&b, `<title id="%s-t">Rate of each arm</title><desc id="%s-d">%s</desc>`, id, id, template.HTMLEscapeString(desc))
	for i, a := range arms {
		top := gap + float64(i)*(barH+gap)
		w := (barChartW - labelW - 150) * math.Abs(a.a.Rate) / hi
		fill := template.HTMLEscapeString(color)
		if a.label == "control" {
			fill = "#8a94a3"
		}
		fmt.Fprintf(&b, `<text class="tick" x="0" y="%.1f">%s</text>`, top+barH*0.7, a.label)
		fmt.Fprintf(&b, `<rect x="%g" y="%.1f" width="%.1f" height="%g" fill="%s"/>`, labelW, top, w, barH, fill)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f">%s · %d users</text>`, labelW+w+6, top+barH*0.7, fmtNum(a.a.Rate), a.a.Exposed)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above from numbers and escaped text only
}
