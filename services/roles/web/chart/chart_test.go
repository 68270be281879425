package chart_test

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/web/chart"
)

// wellFormed fails unless s parses as XML (the figure, its SVG and its table are one tree).
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s)
		}
	}
}

func TestLineChartHasItsNumbersAsText(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	c := chart.Line{ID: "evals", Title: "Evaluations per variation", Desc: "Evaluations of checkout per hour.",
		From: t0, To: t0.Add(3 * time.Hour), Accent: "#b00020",
		Series: []chart.Series{
			{Name: "on", Points: []chart.Point{{T: t0, V: 1200}, {T: t0.Add(time.Hour), V: 800}}},
			{Name: "off <script>", Points: []chart.Point{{T: t0.Add(time.Hour), V: 5}}},
		}}
	out := string(c.HTML())
	wellFormed(t, out)
	for _, want := range []string{`role="img"`, `<title id="evals-t">Evaluations per variation</title>`, `aria-labelledby="evals-t evals-d"`,
		`<td>1,200</td>`, `<td>800</td>`, `<td>5</td>`, `stroke="#b00020"`, `off &lt;script&gt;`, `2026-01-02 11:00`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "<script>") || strings.Contains(out, "style=") {
		t.Errorf("the chart must carry no script and no inline style:\n%s", out)
	}
}

func TestLineChartWithoutDataSaysSo(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	out := string(chart.Line{ID: "x", Title: "Nothing", From: t0, To: t0.Add(time.Hour)}.HTML())
	wellFormed(t, out)
	if !strings.Contains(out, "No data in this range.") {
		t.Errorf("an empty chart should say so:\n%s", out)
	}
}

func TestSafeColorLetsOnlyColoursThrough(t *testing.T) {
	for in, want := range map[string]string{"red": "red", "#a1b2c3": "#a1b2c3", "#fff": "#fff", " green ": "green",
		`red" onload="x`: "", "url(http://x)": "", "#12345": "", "": ""} {
		if got := chart.SafeColor(in); got != want {
			t.Errorf("SafeColor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIntervalChartRowsAndReference(t *testing.T) {
	zero := 0.0
	c := chart.Interval{ID: "uplift", Title: "Uplift of purchase", Desc: "Relative uplift with 95% intervals.", Format: chart.Percent,
		Reference: &zero, Rows: []chart.Row{
			{Label: "control", Estimate: 0, Low: 0, High: 0, Highlight: true},
			{Label: "treatment", Estimate: 0.052, Low: -0.011, High: 0.118},
		}}
	out := string(c.HTML())
	wellFormed(t, out)
	for _, want := range []string{`<th scope="row">treatment</th><td>5.2%</td><td>-1.1%</td><td>11.8%</td>`, `stroke-dasharray="4 3"`,
		`<title id="uplift-t">Uplift of purchase</title>`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		f    chart.Format
		want string
	}{{1234567, chart.Count, "1,234,567"}, {-1234, chart.Count, "-1,234"}, {0.12345, chart.Percent, "12.3%"}, {0.123456, chart.Decimal, "0.1235"}} {
		if got := chart.FormatValue(tc.v, tc.f); got != tc.want {
			t.Errorf("FormatValue(%v, %v) = %q, want %q", tc.v, tc.f, got, tc.want)
		}
	}
}
