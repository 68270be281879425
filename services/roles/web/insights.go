package web

// Flag insights, stale flags and goals (issue 17, part A). Every figure comes from the telemetry
// rollups (never a raw scan) through AnalyticsCommands, the queries the REST API's stats
// endpoints answer with. Charts are server-side SVG (web/chart).

import (
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
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/web/chart"
)

func init() {
	pageNames = append(pageNames, "insights", "stale", "goals", "goal", "experiments", "newexperiment", "experiment")
	funcs["pct"] = func(v float64, decimals int) string { return strconv.FormatFloat(v*100, 'f', decimals, 64) + "%" }
	funcs["fixed"] = func(v float64, decimals int) string { return strconv.FormatFloat(v, 'f', decimals, 64) }
	funcs["count"] = func(v int64) string { return chart.FormatValue(float64(v), chart.Count) }
	funcs["deref"] = func(p *int64) int64 { return *p }
}

// registerAnalytics adds the insights, goals and experiment pages to the project group.
func (s *Server) registerAnalytics(g *echo.Group) {
	g.GET("/:project/flags/:flag/insights", s.insightsPage, s.member(identity.RoleViewer))
	g.POST("/:project/flags/:flag/archive", s.archiveFlag, s.member(identity.RoleEditor))
	g.GET("/:project/stale-flags", s.staleFlagsPage, s.member(identity.RoleViewer))
	g.GET("/:project/goals", s.goalsPage, s.member(identity.RoleViewer))
	g.POST("/:project/goals", s.createGoal, s.member(identity.RoleEditor))
	g.GET("/:project/goals/:goal", s.goalPage, s.member(identity.RoleViewer))
	g.POST("/:project/goals/:goal", s.updateGoal, s.member(identity.RoleEditor))
	g.GET("/:project/experiments", s.experimentsPage, s.member(identity.RoleViewer))
	g.GET("/:project/experiments/new", s.newExperimentPage, s.member(identity.RoleEditor))
	g.POST("/:project/experiments", s.createExperiment, s.member(identity.RoleEditor))
	g.GET("/:project/experiments/:experiment", s.experimentPage, s.member(identity.RoleViewer))
	g.POST("/:project/experiments/:experiment/:action", s.experimentAction, s.member(identity.RoleEditor))
}

// ---- time ranges ----

// timeRange is a preset of the range picker.
type timeRange struct {
	Key   string
	Label string
	D     time.Duration
}

var timeRanges = []timeRange{
	{"1h", "Last hour", time.Hour}, {"6h", "Last 6 hours", 6 * time.Hour}, {"24h", "Last 24 hours", 24 * time.Hour},
	{"7d", "Last 7 days", 7 * 24 * time.Hour}, {"30d", "Last 30 days", 30 * 24 * time.Hour}, {"90d", "Last 90 days", 90 * 24 * time.Hour},
	{"365d", "Last 365 days", 365 * 24 * time.Hour},
}

// rangeChoice is the picker's state: the resolution and range chosen, and what they are allowed.
type rangeChoice struct {
	Interval  telemetry.Interval
	Intervals []telemetry.Interval
	Range     string
	Ranges    []timeRange
}

// statsQueryOf reads the resolution (interval) and range pickers: a range longer than the
// resolution allows is EInvalid at "range" (the page says to widen the resolution).
func statsQueryOf(c echo.Context, project, env string, allowed []telemetry.Interval, defInterval telemetry.Interval, defRange string, now time.Time) (telemetry.StatsQuery, rangeChoice, error) {
	rc := rangeChoice{Interval: defInterval, Intervals: allowed, Range: defRange, Ranges: timeRanges}
	if v := telemetry.Interval(c.QueryParam("interval")); v != "" {
		if !slices.Contains(allowed, v) {
			return telemetry.StatsQuery{}, rc, domain.Invalid("interval", "the resolution must be one of %v", allowed)
		}
		rc.Interval = v
	}
	if v := c.QueryParam("range"); v != "" {
		rc.Range = v
	}
	i := slices.IndexFunc(timeRanges, func(r timeRange) bool { return r.Key == rc.Range })
	if i < 0 {
		return telemetry.StatsQuery{}, rc, domain.Invalid("range", "unknown time range %q", rc.Range)
	}
	q := telemetry.StatsQuery{Project: project, Environment: env, Interval: rc.Interval}
	q.From, q.To = rc.Interval.Align(now.Add(-timeRanges[i].D), now)
	if q.To.Sub(q.From) > rc.Interval.MaxRange() {
		return q, rc, domain.Invalid("range", "a %s series spans at most %s: pick a shorter range or a coarser resolution",
			rc.Interval, humanDuration(rc.Interval.MaxRange()))
	}
	return q, rc, nil
}

func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}

// envColor is an environment's colour for charts ("" when it has none, or an unknown environment).
func envColor(p *domain.Project, env string) string {
	if e := p.Environments[env]; e != nil {
		if c := chart.SafeColor(e.Color); c != "" {
			return c
		}
		if isProduction(e) {
			return "#b3261e" // the console's production colour (console.css --prod)
		}
	}
	return ""
}

func timeLayout(i telemetry.Interval) string {
	if i == telemetry.Day {
		return "2006-01-02"
	}
	return "2006-01-02 15:04"
}

// ---- flag insights ----

type insightsData struct {
	frame
	Flag       *domain.Flag
	Env        *domain.Environment
	Pick       rangeChoice
	Stats      *telemetry.FlagStats
	Rows       []insightRow
	Chart      template.HTML
	UsersChart template.HTML
	Err        *fieldErrors
}

type insightRow struct {
	Variation, Name string
	Evaluations     int64
	Share           float64
	PeakUsers       *int64 // largest distinct users in one minute (minute resolution only)
}

// GET /projects/:project/flags/:flag/insights?env=&interval=&range=
func (s *Server) insightsPage(c echo.Context) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("flag")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, "Insights: "+f.Name, "flags", p)
	d := insightsData{frame: fr, Flag: f, Env: p.Environments[fr.Environment]}
	q, pick, err := statsQueryOf(c, project, fr.Environment, []telemetry.Interval{telemetry.Minute, telemetry.Hour, telemetry.Day}, telemetry.Hour, "24h", time.Now())
	d.Pick = pick
	if err != nil {
		d.Err = asFieldError(err)
		return s.render(c, httpStatus(err), "insights", d)
	}
	st, err := s.cmds.FlagStats(ctx, q, key)
	if err != nil {
		return s.fail(c, err)
	}
	d.Stats = st
	names := map[string]string{}
	for _, v := range f.Variations {
		names[v.Key] = v.Name
	}
	series := make([]chart.Series, 0, len(st.Variations))
	var users []chart.Series
	for _, vs := range st.Variations {
		row := insightRow{Variation: vs.Variation, Name: names[vs.Variation], Evaluations: vs.Evaluations}
		if st.Evaluations > 0 {
			row.Share = float64(vs.Evaluations) / float64(st.Evaluations)
		}
		label := vs.Variation
		if label == "" {
			label = "(error: no variation)"
		}
		line := chart.Series{Name: label}
		u := chart.Series{Name: label}
		for _, pt := range vs.Points {
			line.Points = append(line.Points, chart.Point{T: pt.Time, V: float64(pt.Evaluations)})
			if pt.Users != nil {
				u.Points = append(u.Points, chart.Point{T: pt.Time, V: float64(*pt.Users)})
				if row.PeakUsers == nil || *pt.Users > *row.PeakUsers {
					n := *pt.Users
					row.PeakUsers = &n
				}
			}
		}
		series = append(series, withZeros(line, q.From, q.To, q.Interval.Duration()))
		if len(u.Points) > 0 {
			users = append(users, u)
		}
		d.Rows = append(d.Rows, row)
	}
	envName := fr.Environment
	if d.Env != nil {
		envName = d.Env.Name
	}
	d.Chart = chart.Line{ID: "evaluations-chart", Title: "Evaluations per variation per " + string(q.Interval),
		Desc: fmt.Sprintf("Evaluations of %s in %s per %s from %s to %s, one line per variation.", f.Key, envName, q.Interval,
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339)),
		From: q.From, To: q.To, Series: series, Accent: envColor(p, fr.Environment), TimeLayout: timeLayout(q.Interval)}.HTML()
	if len(users) > 0 {
		d.UsersChart = chart.Line{ID: "users-chart", Title: "Distinct users per minute",
			Desc: fmt.Sprintf("Distinct users who evaluated %s in %s each minute, per variation.", f.Key, envName),
			From: q.From, To: q.To, Series: users, Accent: envColor(p, fr.Environment), TimeLayout: timeLayout(q.Interval)}.HTML()
	}
	return s.render(c, http.StatusOK, "insights", d)
}

// withZeros gives a count series a point in every bucket of [from, to): the rollups have no row
// for a bucket without events, and a line drawn across the gap would show counts that were not.
func withZeros(s chart.Series, from, to time.Time, step time.Duration) chart.Series {
	if step <= 0 || to.Sub(from)/step > 5000 {
		return s
	}
	out := chart.Series{Name: s.Name, Points: make([]chart.Point, 0, int(to.Sub(from)/step))}
	i := 0
	for t := from; t.Before(to); t = t.Add(step) {
		v := 0.0
		for i < len(s.Points) && s.Points[i].T.Before(t) {
			i++
		}
		if i < len(s.Points) && s.Points[i].T.Equal(t) {
			v = s.Points[i].V
		}
		out.Points = append(out.Points, chart.Point{T: t, V: v})
	}
	return out
}

// ---- stale flags ----

type staleData struct {
	frame
	Days  int
	Since time.Time
	Rows  []staleRow
	Err   *fieldErrors
}

type staleRow struct {
	Flag, Name      string
	CreatedAt       time.Time
	LastEvaluatedAt *time.Time
	Why             string
}

// GET /projects/:project/stale-flags?env=&days=: flags of the environment not evaluated for N
// days (or never), and flags that served one variation to everybody for N days.
func (s *Server) staleFlagsPage(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, "Stale flags", "stale", p)
	d := staleData{frame: fr, Days: 30}
	if v := c.QueryParam("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			d.Err = &fieldErrors{Field: "days", Message: "days must be a whole number from 1 to 3650"}
			return s.render(c, http.StatusBadRequest, "stale", d)
		}
		d.Days = n
	}
	d.Since = time.Now().UTC().Add(-time.Duration(d.Days) * 24 * time.Hour).Truncate(time.Second)
	all, err := s.cmds.FlagsActivity(ctx, p.Key, fr.Environment, nil)
	if err != nil {
		return s.fail(c, err)
	}
	served, err := s.cmds.VariationsServed(ctx, p.Key, fr.Environment, d.Since)
	if err != nil {
		return s.fail(c, err)
	}
	d.Rows = staleRows(all, served, d.Since, d.Days)
	return s.render(c, http.StatusOK, "stale", d)
}

// staleRows picks the stale flags: created before since and not evaluated since (or never), or
// evaluated but serving a single variation to everybody since then.
func staleRows(all []telemetry.FlagActivity, served map[string]telemetry.Served, since time.Time, days int) []staleRow {
	var rows []staleRow
	for _, a := range all {
		if !a.CreatedAt.Before(since) {
			continue // younger than the window: not stale yet
		}
		row := staleRow{Flag: a.Flag, Name: a.Name, CreatedAt: a.CreatedAt, LastEvaluatedAt: a.LastEvaluatedAt}
		switch {
		case a.LastEvaluatedAt == nil:
			row.Why = "Never evaluated"
		case a.LastEvaluatedAt.Before(since):
			row.Why = fmt.Sprintf("Not evaluated for %d days", days)
		default:
			sv := served[a.Flag]
			if len(sv.Variations) != 1 {
				continue
			}
			for v := range sv.Variations {
				if v == "" {
					row.Why = fmt.Sprintf("Only errors for %d days", days)
				} else {
					row.Why = fmt.Sprintf("Served only %q to everybody for %d days", v, days)
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// POST /projects/:project/flags/:flag/archive (from the stale flags page, or any page that passes
// back=): archives through the application layer, refused while something depends on the flag.
func (s *Server) archiveFlag(c echo.Context) error {
	project, key := c.Param("project"), c.Param("flag")
	back := safeNext(c.FormValue("back"))
	if back == "/projects" {
		back = flagURL(project, key)
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	if _, err := s.cmds.ArchiveFlag(c.Request().Context(), meta(c), project, key, versionField(c)); err != nil {
		if code := domain.ErrorCode(err); code == domain.EInvalid || code == domain.EConflict {
			return s.errorPage(c, httpStatus(err), "Flag "+key+" was not archived: "+domain.ErrorMessage(err))
		}
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, back+sep+"done="+url.QueryEscape("Archived "+key+"."))
}

// ---- goals ----

type goalsData struct {
	frame
	Goals []*domain.Goal
	New   domain.NewGoal
	Err   *fieldErrors
}

var goalKinds = []domain.GoalKind{domain.GoalConversion, domain.GoalCount, domain.GoalValue}

func init() {
	funcs["goalKinds"] = func() []domain.GoalKind { return goalKinds }
	funcs["goalDirections"] = func() []domain.GoalDirection { return []domain.GoalDirection{domain.GoalIncrease, domain.GoalDecrease} }
}

func (s *Server) goalsPage(c echo.Context) error {
	return s.showGoals(c, http.StatusOK, goalsData{New: domain.NewGoal{Kind: domain.GoalConversion, Direction: domain.GoalIncrease}})
}

func (s *Server) showGoals(c echo.Context, status int, d goalsData) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	d.frame = s.baseFrame(c, "Goals", "goals", p)
	if d.Goals, err = s.cmds.Goals(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	return s.render(c, status, "goals", d)
}

// parseCap reads a value cap field: empty is no cap.
func parseCap(v string) (float64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, domain.Invalid("value_cap", "the value cap must be a number (empty: no cap)")
	}
	return f, nil
}

func (s *Server) createGoal(c echo.Context) error {
	in := domain.NewGoal{Project: c.Param("project"), Key: strings.TrimSpace(c.FormValue("key")), Name: strings.TrimSpace(c.FormValue("name")),
		Description: strings.TrimSpace(c.FormValue("description")), Kind: domain.GoalKind(c.FormValue("kind")),
		Direction: domain.GoalDirection(c.FormValue("direction"))}
	valueCap, err := parseCap(c.FormValue("value_cap"))
	if err == nil {
		in.ValueCap = valueCap
		_, err = s.cmds.CreateGoal(c.Request().Context(), meta(c), in)
	}
	if fe := asFieldError(err); fe != nil {
		return s.showGoals(c, httpStatus(err), goalsData{New: in, Err: fe})
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(in.Project)+"/goals/"+url.PathEscape(in.Key)+"?done="+url.QueryEscape("Goal created."))
}

type goalData struct {
	frame
	Goal  *domain.Goal
	Edit  domain.GoalSettings
	Pick  rangeChoice
	Stats *telemetry.GoalStats
	Chart template.HTML
	Err   *fieldErrors
}

func (s *Server) goalPage(c echo.Context) error {
	return s.showGoal(c, http.StatusOK, nil, nil)
}

func (s *Server) showGoal(c echo.Context, status int, edit *domain.GoalSettings, fe *fieldErrors) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	g, err := s.cmds.Goal(ctx, p.Key, c.Param("goal"))
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, "Goal: "+g.Name, "goals", p)
	d := goalData{frame: fr, Goal: g, Edit: domain.GoalSettings{Name: g.Name, Description: g.Description, Direction: g.Direction, ValueCap: g.ValueCap}, Err: fe}
	if edit != nil {
		d.Edit = *edit
	}
	q, pick, err := statsQueryOf(c, p.Key, fr.Environment, []telemetry.Interval{telemetry.Hour, telemetry.Day}, telemetry.Hour, "24h", time.Now())
	d.Pick = pick
	if err != nil {
		if d.Err == nil {
			d.Err = asFieldError(err)
		}
		return s.render(c, httpStatus(err), "goal", d)
	}
	if d.Stats, err = s.cmds.GoalStats(ctx, q, g.Key, "", ""); err != nil {
		return s.fail(c, err)
	}
	conv := chart.Series{Name: "conversions"}
	val := chart.Series{Name: "value"}
	for _, pt := range d.Stats.Total.Points {
		conv.Points = append(conv.Points, chart.Point{T: pt.Time, V: float64(pt.Conversions)})
		val.Points = append(val.Points, chart.Point{T: pt.Time, V: pt.ValueSum})
	}
	step := q.Interval.Duration()
	series := []chart.Series{withZeros(conv, q.From, q.To, step)}
	title := "Conversions per " + string(q.Interval)
	if g.Kind == domain.GoalValue {
		series = append(series, withZeros(val, q.From, q.To, step))
		title = "Conversions and value per " + string(q.Interval)
	}
	d.Chart = chart.Line{ID: "goal-chart", Title: title,
		Desc: fmt.Sprintf("Goal events of %s in %s per %s from %s to %s.", g.Key, fr.Environment, q.Interval, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339)),
		From: q.From, To: q.To, Series: series, Accent: envColor(p, fr.Environment), TimeLayout: timeLayout(q.Interval), Format: chart.Count}.HTML()
	return s.render(c, status, "goal", d)
}

func (s *Server) updateGoal(c echo.Context) error {
	edit := domain.GoalSettings{Name: strings.TrimSpace(c.FormValue("name")), Description: strings.TrimSpace(c.FormValue("description")),
		Direction: domain.GoalDirection(c.FormValue("direction"))}
	valueCap, err := parseCap(c.FormValue("value_cap"))
	if err == nil {
		edit.ValueCap = valueCap
		_, err = s.cmds.UpdateGoal(c.Request().Context(), meta(c), c.Param("project"), c.Param("goal"), versionField(c), edit)
	}
	if domain.ErrorCode(err) == domain.EConflict && asFieldError(err) == nil {
		return s.showGoal(c, http.StatusConflict, &edit, &fieldErrors{Field: "version", Message: "Someone changed this goal meanwhile: the form shows your draft over the current version; save again to apply it."})
	}
	if fe := asFieldError(err); fe != nil {
		return s.showGoal(c, httpStatus(err), &edit, fe)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, c.Request().URL.Path+"?done="+url.QueryEscape("Goal saved."))
}
