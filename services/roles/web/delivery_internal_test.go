package web

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// A due time typed in a datetime-local input is read in the zone the form names and stored in UTC.
func TestParseLocalTime(t *testing.T) {
	cases := []struct {
		value, zone, want, errField string
	}{
		{"2026-12-24T18:30", "Europe/Paris", "2026-12-24T17:30:00Z", ""},
		{"2026-07-01T09:00", "Europe/Paris", "2026-07-01T07:00:00Z", ""}, // summer time
		{"2026-12-24T18:30:15", "America/New_York", "2026-12-24T23:30:15Z", ""},
		{"2026-12-24T18:30", "", "2026-12-24T18:30:00Z", ""},
		{"2026-12-24T18:30", "UTC", "2026-12-24T18:30:00Z", ""},
		{"2026-12-24T18:30", "+02:00", "2026-12-24T16:30:00Z", ""},
		{"2026-12-24T18:30", "-0530", "2026-12-25T00:00:00Z", ""},
		{"2026-12-24T18:30", "UTC+2", "2026-12-24T16:30:00Z", ""},
		{"2026-12-24T18:30:00+01:00", "Asia/Tokyo", "2026-12-24T17:30:00Z", ""}, // a full RFC 3339 time names its own offset
		{"", "UTC", "", "at"},
		{"tomorrow", "UTC", "", "at"},
		{"2026-12-24T18:30", "Mars/Olympus", "", "tz"},
		{"2026-12-24T18:30", "+25:00", "", "tz"},
		{"2026-12-24T18:30", "Local", "", "tz"},
	}
	for _, c := range cases {
		got, err := parseLocalTime(c.value, c.zone)
		if c.errField != "" {
			if fe := asFieldError(err); fe == nil || fe.Field != c.errField {
				t.Errorf("parseLocalTime(%q, %q) = %v, %v; want an error at %s", c.value, c.zone, got, err, c.errField)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != c.want || got.Location() != time.UTC {
			t.Errorf("parseLocalTime(%q, %q) = %v, %v; want %s", c.value, c.zone, got, err, c.want)
		}
	}
}

func TestRolloutStepsSayWhereEachStepIs(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := domain.RolloutTemplate(at, time.Hour, 1, 5, 25, 50, 100)
	statuses := func(r *domain.Rollout) string {
		var out []string
		for _, s := range rolloutSteps(r) {
			out = append(out, s.Status)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		r    domain.Rollout
		want string
	}{
		{domain.Rollout{Steps: steps, Status: domain.RolloutStatusScheduled}, "next,pending,pending,pending,pending"},
		{domain.Rollout{Steps: steps, Status: domain.RolloutStatusRunning, Next: 2, Skipped: []int{0}}, "skipped,applied,next,pending,pending"},
		{domain.Rollout{Steps: steps, Status: domain.RolloutStatusPaused, Next: 3}, "applied,applied,applied,paused,pending"},
		{domain.Rollout{Steps: steps, Status: domain.RolloutStatusAborted, Next: 1}, "applied,cancelled,cancelled,cancelled,cancelled"},
		{domain.Rollout{Steps: steps, Status: domain.RolloutStatusCompleted, Next: 5}, "applied,applied,applied,applied,applied"},
	} {
		if got := statuses(&c.r); got != c.want {
			t.Errorf("%s at step %d: %s, want %s", c.r.Status, c.r.Next, got, c.want)
		}
	}
}

// The evidence charts are well-formed SVG with a title and a description (their text
// alternative), in the environment's colour, and nothing from the data escapes into markup.
func TestEvidenceChartsAreAccessibleSVG(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	firings := []delivery.Firing{
		{FiredAt: at.Add(time.Hour), Evidence: domain.AutoOpsEvidence{Value: 0.12, Treatment: domain.AutoOpsArm{Exposed: 1200, Rate: 0.2}, Control: &domain.AutoOpsArm{Exposed: 1180, Rate: 0.08}}},
		{FiredAt: at, Evidence: domain.AutoOpsEvidence{Value: 0.07, Treatment: domain.AutoOpsArm{Exposed: 900, Rate: 0.15}}},
	}
	p := &domain.Project{Environments: map[string]*domain.Environment{"production": {Key: "production", Color: "#d12"}, "evil": {Key: "evil", Color: `red" onload="x`}}}
	for name, svg := range map[string]string{
		"series": string(evidenceChart("s", firings, 0.05, environmentColor(p, "production"))),
		"arms":   string(armsChart("a", firings[0].Evidence, environmentColor(p, "production"))),
		"evil":   string(evidenceChart("e", firings, 0.05, environmentColor(p, "evil"))),
	} {
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("%s: not well-formed: %v\n%s", name, err, svg)
		}
		for _, want := range []string{`role="img"`, "<title", "<desc"} {
			if !strings.Contains(svg, want) {
				t.Errorf("%s lacks %s", name, want)
			}
		}
		if strings.Contains(svg, "onload") {
			t.Errorf("%s: a colour escaped into markup: %s", name, svg)
		}
	}
	if s := string(evidenceChart("s", firings, 0.05, "#d12")); !strings.Contains(s, `stroke="#d12"`) || !strings.Contains(s, "0.12") || !strings.Contains(s, "threshold 0.05") {
		t.Errorf("the series chart lacks the environment's colour or its numbers: %s", s)
	}
	if evidenceChart("s", nil, 1, "red") != "" {
		t.Errorf("a rule that never fired has a chart")
	}
}

func TestDeliveryPagesRender(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	proj := &domain.Project{Key: "shop", Name: "Shop", Environments: map[string]*domain.Environment{"production": {Key: "production", Name: "Production"}}}
	u := identity.User{ID: "u_1", DisplayName: "Ada"}
	df := deliveryFrame{frame: frame{Title: "T", User: &u, CSRF: "tok", Project: proj, Environment: "production", Role: "editor", CanEdit: true, Nav: "delivery"},
		Flags: []string{"banner"}, Err: &fieldErrors{Field: "at", Message: "bad"}}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sc := &domain.ScheduledChange{Project: "shop", ID: "s1", Flag: "banner", Environment: "production", ChangeSpec: domain.ChangeSpec{At: at, Kind: domain.ChangeToggle, On: true},
		Status: domain.ScheduleStatusFailed, FailureReason: "the flag was archived", ResolvedAt: at}
	r := &domain.Rollout{Project: "shop", ID: "r1", Flag: "banner", Environment: "production", Variation: "true", Other: "false",
		Steps: domain.RolloutTemplate(at, time.Hour, 1, 5, 100), Status: domain.RolloutStatusRunning, Next: 1, Percent: 1}
	rule := &domain.AutoOpsRule{Project: "shop", ID: "a1", Flag: "banner", Environment: "production", Enabled: true,
		AutoOpsDefinition: domain.AutoOpsDefinition{Name: "errors", Metric: domain.AutoOpsMetric{Goal: "error", Variation: "true"}, Comparison: "gt", Threshold: 0.1, Action: domain.AutoOpsTurnOff}}
	last := at
	firing := delivery.Firing{FiredAt: at, Evidence: domain.AutoOpsEvidence{Value: 0.2, Threshold: 0.1, Comparison: "gt", Decision: "fired: 0.2 > 0.1"}}
	cases := map[string]any{
		"schedules":   schedulesData{deliveryFrame: df, Schedules: []*domain.ScheduledChange{sc}, Statuses: []string{"pending"}, Form: scheduleForm{Kind: "on"}},
		"schedule":    scheduleData{deliveryFrame: df, Schedule: &domain.ScheduledChange{ID: "s2", Flag: "banner", ChangeSpec: domain.ChangeSpec{At: at, Kind: domain.ChangeDefault, Default: &domain.Serve{Variation: "b"}}, Status: domain.ScheduleStatusPending}, Form: scheduleForm{Kind: "default", UTC: true}},
		"rollouts":    rolloutsData{deliveryFrame: df, Rollouts: []*domain.Rollout{r}, Templates: rolloutTemplates, Form: rolloutForm{Template: "standard"}},
		"rollout":     rolloutData{deliveryFrame: df, Rollout: r, Steps: rolloutSteps(r), EnvName: "Production"},
		"autoops":     autoOpsData{deliveryFrame: df, Rules: []*domain.AutoOpsRule{rule}, Goals: []*domain.Goal{{Key: "error", Name: "Errors"}}},
		"autoopsrule": autoOpsRuleData{deliveryFrame: df, Rule: rule, Firings: []firingView{{Firing: firing, Chart: armsChart("f", firing.Evidence, "red")}}, Series: evidenceChart("s", []delivery.Firing{firing}, 0.1, "red")},
		"triggers": triggersData{deliveryFrame: df, Triggers: []delivery.TriggerSummary{{ID: "t1", Name: "Pager", Flag: "banner", Environment: "production", Action: "off", Enabled: true, Fired: 2, LastFiredAt: &last}},
			Secret: &shownSecret{Name: "Pager", URL: "http://x/hooks/v1/triggers/t1", Secret: "sec"}},
	}
	for name, data := range cases {
		var b strings.Builder
		if err := p.sets[name].ExecuteTemplate(io.MultiWriter(&b), "layout.html", data); err != nil {
			t.Errorf("page %s: %v", name, err)
		}
		if !strings.Contains(b.String(), `aria-current="page">Delivery`) {
			t.Errorf("page %s: the navigation does not mark Delivery as current", name)
		}
	}
}

// The render of the heaviest delivery pages, without the database: an auto-ops rule with the 50
// firings the page shows (two SVG charts each counted), and 100 scheduled changes.
func BenchmarkDeliveryPagesRender(b *testing.B) {
	p, err := parsePages()
	if err != nil {
		b.Fatal(err)
	}
	proj := &domain.Project{Key: "shop", Name: "Shop", Environments: map[string]*domain.Environment{"production": {Key: "production", Name: "Production", Color: "#d12"}}}
	u := identity.User{ID: "u_1", DisplayName: "Ada"}
	df := deliveryFrame{frame: frame{Title: "T", User: &u, CSRF: "tok", Project: proj, Environment: "production", Role: "editor", CanEdit: true, Nav: "delivery"}, Flags: []string{"banner"}}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rule := &domain.AutoOpsRule{Project: "shop", ID: "a1", Flag: "banner", Environment: "production", Enabled: true,
		AutoOpsDefinition: domain.AutoOpsDefinition{Name: "errors", Metric: domain.AutoOpsMetric{Goal: "error", Variation: "true", Control: "false"}, Comparison: "gt", Threshold: 0.01, Action: domain.AutoOpsTurnOff}}
	var firings []delivery.Firing
	for i := range maxFiringsShown {
		firings = append(firings, delivery.Firing{Version: int64(100 - i), FiredAt: at.Add(-time.Duration(i) * time.Hour), Evidence: domain.AutoOpsEvidence{
			Value: 0.01 + float64(i%7)/1000, Treatment: domain.AutoOpsArm{Exposed: 5000, Rate: 0.05}, Control: &domain.AutoOpsArm{Exposed: 5000, Rate: 0.012},
			Probability: 0.99, Threshold: 0.01, Comparison: "gt", Decision: "fired: 0.038 > 0.01 with p 0.99"}})
	}
	var schedules []*domain.ScheduledChange
	for i := range deliveryListSize {
		schedules = append(schedules, &domain.ScheduledChange{Project: "shop", ID: fmt.Sprintf("s%d", i), Flag: "banner", Environment: "production",
			ChangeSpec: domain.ChangeSpec{At: at.Add(time.Duration(i) * time.Hour), Kind: domain.ChangeToggle, On: i%2 == 0}, Status: domain.ScheduleStatusPending})
	}
	b.Run("autoops rule with 50 firings", func(b *testing.B) {
		for b.Loop() {
			d := autoOpsRuleData{deliveryFrame: df, Rule: rule, EnvName: "Production"}
			for i, f := range firings {
				d.Firings = append(d.Firings, firingView{Firing: f, Chart: armsChart(fmt.Sprintf("firing-%d", i), f.Evidence, "#d12")})
			}
			d.Series = evidenceChart("series", firings, rule.Threshold, "#d12")
			if err := p.sets["autoopsrule"].ExecuteTemplate(io.Discard, "layout.html", d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("100 scheduled changes", func(b *testing.B) {
		for b.Loop() {
			if err := p.sets["schedules"].ExecuteTemplate(io.Discard, "layout.html", schedulesData{deliveryFrame: df, Schedules: schedules}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
