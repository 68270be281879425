package web

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/analysis"
	"github.com/vexil-flags/vexil/services/roles/web/chart"
)

func analyticsFrame() frame {
	proj := &domain.Project{Key: "shop", Name: "Shop", Environments: map[string]*domain.Environment{
		"production": {Key: "production", Name: "Production", Color: "#b00020"}, "development": {Key: "development", Name: "Development"}}}
	u := identity.User{ID: "u_1", DisplayName: "Ada"}
	return frame{Title: "T", User: &u, CSRF: "tok", Project: proj, Environment: "production", Role: "editor", CanEdit: true}
}

// fixtureReport is an experiment with variations and goals, each goal with points of history.
func fixtureReport(variations, goals, points int) (*domain.Experiment, *analysis.Report, map[string][]analysis.Point) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := &domain.Experiment{Project: "shop", Key: "exp", Status: domain.ExperimentStatusRunning, StartedAt: t0, Version: 3,
		ExperimentDefinition: domain.ExperimentDefinition{Name: "Four ways", Flag: "checkout", Environment: "production"}}
	r := &analysis.Report{Project: "shop", Experiment: "exp", ComputedAt: t0.Add(time.Duration(points) * time.Hour), Users: 2000, ExcludedUsers: 7,
		Verdict: "b has a 97.0% chance to beat a.", SRM: stats.SRMResult{Mismatch: true, Total: 2000, PValue: 0.0001}}
	history := map[string][]analysis.Point{}
	for i := range variations {
		key := string(rune('a' + i))
		e.Variations = append(e.Variations, domain.ExperimentVariation{Variation: key, Control: i == 0, Weight: domain.BucketCount / variations})
		r.SRM.Observed = append(r.SRM.Observed, int64(400+100*i))
		r.SRM.Expected = append(r.SRM.Expected, 2000/float64(variations))
	}
	for g := range goals {
		kind := domain.GoalConversion
		if g%2 == 1 {
			kind = domain.GoalValue
		}
		gr := analysis.GoalResult{Goal: fmt.Sprintf("goal-%d", g), Kind: kind, Direction: domain.GoalIncrease, Role: "secondary"}
		for i, v := range e.Variations {
			x := 0.1 + 0.01*float64(i)
			gr.Variations = append(gr.Variations, analysis.VariationResult{Variation: v.Variation, Control: v.Control, Users: 500, Estimate: x,
				CI95: [2]float64{x - 0.02, x + 0.02}, ChanceToBeatControl: 0.5 + 0.1*float64(i), ProbabilityToBeBest: 0.25, ExpectedLoss: 0.0012346,
				Uplift: 0.1 * float64(i), UpliftCI95: [2]float64{-0.05, 0.2}})
		}
		for p := range points { // as the analyzer's History: by time, then variation
			for i, v := range e.Variations {
				x := 0.1 + 0.01*float64(i)
				history[gr.Goal] = append(history[gr.Goal], analysis.Point{ComputedAt: t0.Add(time.Duration(p) * time.Hour), Variation: v.Variation,
					Users: int64(10 * p), Estimate: x * (1 + 0.001*float64(p)), CILow: x - 0.02, CIHigh: x + 0.02, ChanceToBeatControl: 0.5})
			}
		}
		r.Goals = append(r.Goals, gr)
	}
	return e, r, history
}

func reportData(fr frame, e *domain.Experiment, r *analysis.Report, history map[string][]analysis.Point) experimentData {
	d := experimentData{frame: fr, Experiment: e, Report: r, SRM: srmOf(e, r.SRM), Variations: []string{"a", "b"}}
	for i, g := range r.Goals {
		d.Goals = append(d.Goals, goalViewOf(i, g, "Goal", history[g.Goal], "#b00020"))
	}
	return d
}

// The analytics pages render with typical data, errors included.
func TestAnalyticsPagesRender(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	fr := analyticsFrame()
	users := int64(12)
	flag := &domain.Flag{Key: "banner", Name: "Banner", Variations: []domain.Variation{{Key: "a", Name: "A"}}}
	e, r, history := fixtureReport(2, 2, 3)
	pick := rangeChoice{Interval: telemetry.Minute, Intervals: []telemetry.Interval{telemetry.Minute, telemetry.Hour}, Range: "1h", Ranges: timeRanges}
	last := time.Now()
	cases := map[string]any{
		"insights": insightsData{frame: fr, Flag: flag, Env: fr.Project.Environments["production"], Pick: pick,
			Stats: &telemetry.FlagStats{Evaluations: 3, LastEvaluatedAt: &last}, Rows: []insightRow{{Variation: "a", Evaluations: 3, Share: 1, PeakUsers: &users}, {Evaluations: 1}},
			Err: &fieldErrors{Field: "range", Message: "too long"}},
		"stale": staleData{frame: fr, Days: 30, Rows: []staleRow{{Flag: "old", Why: "Never evaluated"}, {Flag: "x", LastEvaluatedAt: &last}}},
		"goals": goalsData{frame: fr, Goals: []*domain.Goal{{Key: "purchase", Name: "Purchase", Kind: domain.GoalValue, ValueCap: 10}},
			Err: &fieldErrors{Field: "key", Message: "taken"}},
		"goal": goalData{frame: fr, Goal: &domain.Goal{Key: "purchase", Kind: domain.GoalValue}, Pick: pick, Stats: &telemetry.GoalStats{},
			Err: &fieldErrors{Field: "name", Message: "required"}},
		"experiments": experimentsData{frame: fr, Experiments: []*domain.Experiment{e}},
		"newexperiment": newExperimentData{frame: fr, FlagKeys: []string{"banner"}, Goals: []*domain.Goal{{Key: "purchase", Name: "Purchase"}},
			Form:         experimentForm{Flag: "banner", Env: "production", Variations: []formVariation{{Key: "a", Include: true}}, Secondary: []string{"purchase"}},
			PlanSentence: "To detect…", Err: &fieldErrors{Field: "variations[0].weight", Message: "bad"}},
		"experiment": reportData(fr, e, r, history),
	}
	for name, data := range cases {
		var b bytes.Buffer
		if err := p.sets[name].ExecuteTemplate(&b, "layout.html", data); err != nil {
			t.Errorf("page %s: %v", name, err)
		}
	}
	// No report yet, and a viewer: no buttons.
	vf := fr
	vf.CanEdit = false
	var b bytes.Buffer
	if err := p.sets["experiment"].ExecuteTemplate(&b, "layout.html", experimentData{frame: vf, Experiment: e, NoReport: "none yet"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `id="analyze"`) || !strings.Contains(b.String(), "none yet") {
		t.Errorf("a viewer's report page without analysis:\n%s", b.String())
	}
}

func TestReportShowsTheFiguresAtTheStatedPrecision(t *testing.T) {
	e, r, history := fixtureReport(2, 1, 3)
	d := reportData(analyticsFrame(), e, r, history)
	rows := d.Goals[0].Rows
	if rows[0].Variation != "a" || !rows[0].Control || rows[0].Chance != "" || rows[0].Estimate != "10.00%" || rows[0].CILow != "8.00%" {
		t.Errorf("control row: %+v", rows[0])
	}
	if b := rows[1]; b.Chance != "60.0%" || b.Uplift != "10.00%" || b.UpliftLow != "-5.00%" || b.UpliftHigh != "20.00%" || b.Loss != "0.001235" || b.Best != "25.0%" {
		t.Errorf("variation row: %+v", b)
	}
	if d.SRM == nil || d.SRM.Rows[1].Observed != 500 || d.SRM.Rows[1].ObservedShare != "25.0%" || d.SRM.Rows[1].ExpectedShare != "50.0%" || d.SRM.Rows[1].Expected != "1000.0" {
		t.Errorf("SRM: %+v", d.SRM)
	}
	// b's estimate at every analysis is 0.11 against a's 0.10 (times the same drift): 10.0% uplift.
	if d.Goals[0].HistoryPoints != 3 {
		t.Errorf("history points: %d, want the 3 analyses", d.Goals[0].HistoryPoints)
	}
	if h := string(d.Goals[0].UpliftHistoryChart); strings.Count(h, "<td>10.0%</td>") != 3 {
		t.Errorf("uplift history lacks b's 10.0%% at each of the 3 analyses:\n%s", h)
	}
}

func TestExperimentFormTurnsPercentagesIntoBuckets(t *testing.T) {
	f := experimentForm{Name: "X", Flag: "f", Env: "production", Control: "a", Allocation: "12.5", Primary: "purchase",
		Variations: []formVariation{{Key: "a", Include: true, Weight: "33.333"}, {Key: "b", Include: true, Weight: "66.667"}, {Key: "c"}}}
	d, err := f.definition()
	if err != nil {
		t.Fatal(err)
	}
	if d.Allocation != 12500 || len(d.Variations) != 2 || d.Variations[0].Weight != 33333 || d.Variations[1].Weight != 66667 || !d.Variations[0].Control || d.Variations[1].Control {
		t.Errorf("definition: %+v", d)
	}
	if d.SecondaryGoals == nil || d.GuardrailGoals == nil {
		t.Errorf("empty goal lists must be [] for the domain: %+v", d)
	}
	f.Variations[1].Weight = "150"
	if _, err := f.definition(); domain.ErrorCode(err) != domain.EInvalid || !strings.Contains(err.Error(), "variations[1].weight") {
		t.Errorf("a weight over 100%%: %v", err)
	}
	f.Variations[0].Weight, f.Variations[1].Weight = "", ""
	if d, _ := f.definition(); d.Variations[0].Weight != 0 || d.Variations[1].Weight != 0 {
		t.Errorf("empty weights are an equal split (zeros for the domain): %+v", d.Variations)
	}
}

func TestPlanIsSaidInWords(t *testing.T) {
	p := &analysis.PlanResponse{Plan: stats.Plan{UsersPerVariation: 3100, TotalUsers: 6200, Power: 0.8, Alpha: 0.05, Days: 13.2}, DailyUsers: 470, MeasuredDailyUsers: true}
	got := planSentence(p, experimentForm{MDE: "5", Primary: "purchase", Allocation: "100", Env: "production"})
	want := "To detect a 5% relative change in purchase with 80% power at a 5% significance level, you need about 3,100 users per variation (6,200 in all). " +
		"At the flag's traffic over the last 7 days (about 470 users a day), with 100% of them in the experiment, that takes about 14 days."
	if got != want {
		t.Errorf("plan sentence:\n got %s\nwant %s", got, want)
	}
	p.Days = 0
	if got := planSentence(p, experimentForm{MDE: "5", Env: "production"}); !strings.Contains(got, "cannot be estimated yet") {
		t.Errorf("no traffic: %s", got)
	}
}

// BenchmarkReportRender is the report page's rendering alone (no database): 4 variations, 5 goals,
// 100 analysis points each. BenchmarkExperimentReportPage (services/platform) measures the whole
// request.
func BenchmarkReportRender(b *testing.B) {
	p, err := parsePages()
	if err != nil {
		b.Fatal(err)
	}
	e, r, history := fixtureReport(4, 5, 100)
	fr := analyticsFrame()
	for b.Loop() {
		d := reportData(fr, e, r, history)
		if err := p.sets["experiment"].ExecuteTemplate(io.Discard, "layout.html", d); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCountSeriesGetZerosInEmptyBuckets(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := withZeros(chart.Series{Name: "a", Points: []chart.Point{{T: t0.Add(time.Hour), V: 5}}}, t0, t0.Add(3*time.Hour), time.Hour)
	want := []chart.Point{{T: t0, V: 0}, {T: t0.Add(time.Hour), V: 5}, {T: t0.Add(2 * time.Hour), V: 0}}
	if len(s.Points) != len(want) {
		t.Fatalf("points: %v", s.Points)
	}
	for i := range want {
		if !s.Points[i].T.Equal(want[i].T) || s.Points[i].V != want[i].V {
			t.Errorf("point %d: %v, want %v", i, s.Points[i], want[i])
		}
	}
}

func TestStaleFlags(t *testing.T) {
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	since := now.Add(-30 * 24 * time.Hour)
	old, recent, young := now.Add(-90*24*time.Hour), now.Add(-time.Hour), now.Add(-2*24*time.Hour)
	longAgo := now.Add(-40 * 24 * time.Hour)
	all := []telemetry.FlagActivity{
		{Flag: "never", CreatedAt: old},
		{Flag: "unused", CreatedAt: old, LastEvaluatedAt: &longAgo},
		{Flag: "one-variation", CreatedAt: old, LastEvaluatedAt: &recent},
		{Flag: "split", CreatedAt: old, LastEvaluatedAt: &recent},
		{Flag: "new", CreatedAt: young},
	}
	served := map[string]telemetry.Served{
		"one-variation": {Flag: "one-variation", Variations: map[string]int64{"on": 1200}},
		"split":         {Flag: "split", Variations: map[string]int64{"on": 600, "off": 600}},
	}
	got := map[string]string{}
	for _, r := range staleRows(all, served, since, 30) {
		got[r.Flag] = r.Why
	}
	want := map[string]string{"never": "Never evaluated", "unused": "Not evaluated for 30 days",
		"one-variation": `Served only "on" to everybody for 30 days`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stale flags:\n got %v\nwant %v", got, want)
	}
}

// A value goal with a quantile setting gets its own table: p90, its interval, the change
// against the control with its interval and p-value; an invalid comparison says so.
func TestReportShowsAValueGoalsQuantile(t *testing.T) {
	e, r, history := fixtureReport(3, 2, 1)
	g := &r.Goals[1] // a value goal
	test := &stats.FrequentistResult{Valid: true, Estimate: 0.125, CI: [2]float64{0.05, 0.2}, PValue: 0.00123}
	g.Variations[0].Quantile = &analysis.QuantileFigures{Quantile: 0.9, Users: 500, Estimate: 40, CI: [2]float64{38.5, 42}, ChanceToBeatControl: 0.5}
	g.Variations[1].Quantile = &analysis.QuantileFigures{Quantile: 0.9, Users: 500, Estimate: 45, CI: [2]float64{43, 47.25}, Frequentist: test}
	g.Variations[2].Quantile = &analysis.QuantileFigures{Quantile: 0.9, Users: 1, Frequentist: &stats.FrequentistResult{Reason: "not enough data"}}
	d := reportData(analyticsFrame(), e, r, history)
	gv := d.Goals[1]
	if gv.Quantile != "p90" || len(gv.QuantileRows) != 3 || d.Goals[0].Quantile != "" {
		t.Fatalf("quantile view %q %+v", gv.Quantile, gv.QuantileRows)
	}
	if a := gv.QuantileRows[0]; !a.Control || a.Estimate != "40.0000" || a.CILow != "38.5000" || a.Change != "" {
		t.Errorf("control row %+v", a)
	}
	if b := gv.QuantileRows[1]; b.Estimate != "45.0000" || b.CIHigh != "47.2500" || b.Change != "12.50%" || b.ChangeLow != "5.00%" || b.ChangeHigh != "20.00%" || b.PValue != "0.00123" {
		t.Errorf("variation row %+v", b)
	}
	if c := gv.QuantileRows[2]; c.Change != "not enough data" {
		t.Errorf("invalid comparison %+v", c)
	}
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.sets["experiment"].ExecuteTemplate(&b, "layout.html", d); err != nil {
		t.Fatal(err)
	}
	if html := b.String(); !strings.Contains(html, `data-quantile="p90"`) || !strings.Contains(html, "p90 of the value per user") || !strings.Contains(html, "12.50%") {
		t.Errorf("page lacks the quantile table")
	}
}
