// Package chart draws the console's charts as SVG on the server: a line chart of series over
// time (evaluations per variation, goal conversions, an experiment's chance to beat control) and
// an interval chart (a forest plot of estimates with their 95% intervals). The output is a
// <figure> with an SVG (role="img", a <title> and a <desc>) and a data table in a <details>, so a
// screen reader or a person who prefers numbers gets every value; nothing is loaded from any host
// and no script or inline style is used (the console's Content-Security-Policy forbids both: SVG
// presentation attributes are not styles).
//
// Colours: the first series takes the environment's colour (Accent) when it has one, so a chart
// of production looks like production elsewhere in the console; the others cycle through a
// palette chosen to stay apart for the common colour-vision deficiencies (Okabe & Ito).
package chart

import (
	"fmt"
	"html/template"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Palette is the series colours after the accent (Okabe & Ito's colour-blind-safe set, darkened
// where needed for contrast on white).
var Palette = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9", "#000000"}

// Geometry of every chart, in SVG user units (the SVG scales to its container).
const (
	width        = 720
	height       = 260
	marginLeft   = 64
	marginRight  = 16
	marginTop    = 16
	marginBottom = 40
	gridLines    = 4
)

// Point is one value of a series at a time.
type Point struct {
	T time.Time
	V float64
}

// Series is a named line.
type Series struct {
	Name   string
	Points []Point // in time order
}

// Format tells how values are written on the axis and in the table.
type Format int

// Formats.
const (
	Count   Format = iota // 12,345
	Decimal               // 0.1234
	Percent               // 12.3%
)

// Line is a line chart of series over [From, To).
type Line struct {
	ID     string // unique on the page: the SVG's title and description are referenced by it
	Title  string // short; also the SVG's accessible name
	Desc   string // one sentence: what the chart shows (the SVG's description)
	From   time.Time
	To     time.Time
	Series []Series
	Format Format
	// YMin and YMax fix the value axis (both zero: from zero, or the data's minimum if negative,
	// to the data's maximum, rounded up).
	YMin, YMax float64
	// Reference draws a dashed horizontal line at this value when set (e.g. 95% chance to beat).
	Reference *float64
	Accent    string // the environment's colour; "" for the palette only
	// TimeLayout formats times in the table and on the axis ("2006-01-02 15:04" if empty).
	TimeLayout string
}

var colorPattern = regexp.MustCompile(`^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]{3,20})$`)

// SafeColor returns c when it is a hex colour or a colour name (an environment's colour is free
// text up to 32 characters: nothing else reaches an attribute), else "".
func SafeColor(c string) string {
	c = strings.TrimSpace(c)
	if colorPattern.MatchString(c) {
		return c
	}
	return ""
}

// colors are the series colours: the accent first when it is safe and not white-ish.
func colors(accent string, n int) []string {
	out := make([]string, 0, n)
	a := SafeColor(accent)
	if l := strings.ToLower(a); l == "white" || l == "#fff" || l == "#ffffff" {
		a = ""
	}
	if a != "" {
		out = append(out, a)
	}
	for i := 0; len(out) < n; i++ {
		out = append(out, Palette[i%len(Palette)])
	}
	return out
}

// FormatValue writes v as f does.
func FormatValue(v float64, f Format) string {
	switch f {
	case Percent:
		return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
	case Decimal:
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	return groupThousands(int64(math.Round(v)))
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, so axis labels are round.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

type svgWriter struct{ strings.Builder }

func (w *svgWriter) f(format string, args ...any) { fmt.Fprintf(&w.Builder, format, args...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// HTML renders the chart: a figure with the SVG and its data table.
func (c Line) HTML() template.HTML {
	layout := c.TimeLayout
	if layout == "" {
		layout = "2006-01-02 15:04"
	}
	lo, hi := c.YMin, c.YMax
	if lo == 0 && hi == 0 {
		for _, s := range c.Series {
			for _, p := range s.Points {
				hi = math.Max(hi, p.V)
				lo = math.Min(lo, p.V)
			}
		}
		if c.Reference != nil {
			hi, lo = math.Max(hi, *c.Reference), math.Min(lo, *c.Reference)
		}
		hi = niceCeil(hi)
		if lo < 0 {
			lo = -niceCeil(-lo)
		}
	}
	if hi <= lo {
		hi = lo + 1
	}
	from, to := c.From, c.To
	if !to.After(from) {
		to = from.Add(time.Minute)
	}
	plotW, plotH := float64(width-marginLeft-marginRight), float64(height-marginTop-marginBottom)
	x := func(t time.Time) float64 {
		return marginLeft + plotW*float64(t.Sub(from))/float64(to.Sub(from))
	}
	y := func(v float64) float64 { return marginTop + plotH*(1-(v-lo)/(hi-lo)) }
	cols := colors(c.Accent, len(c.Series))

	var w svgWriter
	w.f(`<figure class="chart" id="%s">`, esc(c.ID))
	w.f(`<svg viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">`,
		width, height, esc(c.ID), esc(c.ID))
	w.f(`<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, esc(c.ID), esc(c.Title), esc(c.ID), esc(c.Desc))
	// Grid and value axis.
	for i := 0; i <= gridLines; i++ {
		v := lo + (hi-lo)*float64(i)/gridLines
		yy := y(v)
		w.f(`<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#d0d4da" stroke-width="1"/>`, marginLeft, width-marginRight, num(yy), num(yy))
		w.f(`<text x="%d" y="%s" text-anchor="end" font-size="11" fill="#3b4048">%s</text>`, marginLeft-6, num(yy+4), esc(FormatValue(v, c.Format)))
	}
	// Time axis: the ends and the middle.
	for i, t := range []time.Time{from, from.Add(to.Sub(from) / 2), to} {
		anchor := [...]string{"start", "middle", "end"}[i]
		w.f(`<text x="%s" y="%d" text-anchor="%s" font-size="11" fill="#3b4048">%s</text>`, num(x(t)), height-marginBottom+16, anchor, esc(t.UTC().Format(layout)))
	}
	if c.Reference != nil {
		ry := y(*c.Reference)
		w.f(`<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#3b4048" stroke-width="1" stroke-dasharray="4 3"/>`, marginLeft, width-marginRight, num(ry), num(ry))
	}
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		var pts strings.Builder
		for j, p := range s.Points {
			if j > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(num(x(p.T)) + "," + num(y(p.V)))
		}
		w.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, pts.String(), cols[i])
		if len(s.Points) <= 60 { // markers only where they stay readable
			for _, p := range s.Points {
				w.f(`<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, num(x(p.T)), num(y(p.V)), cols[i])
			}
		}
	}
	// Legend below the time axis.
	lx := float64(marginLeft)
	for i, s := range c.Series {
		w.f(`<rect x="%s" y="%d" width="10" height="10" fill="%s"/>`, num(lx), height-14, cols[i])
		w.f(`<text x="%s" y="%d" font-size="11" fill="#1f2328">%s</text>`, num(lx+14), height-5, esc(s.Name))
		lx += 24 + 7*float64(len([]rune(s.Name)))
	}
	w.f(`</svg>`)
	c.table(&w, layout)
	w.f(`</figure>`)
	return template.HTML(w.String()) //nolint:gosec // every text above is escaped
}

// table is the chart's text alternative: one row per time, one column per series.
func (c Line) table(w *svgWriter, layout string) {
	times := map[time.Time]bool{}
	var order []time.Time
	for _, s := range c.Series {
		for _, p := range s.Points {
			if !times[p.T] {
				times[p.T] = true
				order = append(order, p.T)
			}
		}
	}
	sortTimes(order)
	w.f(`<details><summary>%s: the numbers</summary><table class="data"><thead><tr><th scope="col">Time (UTC)</th>`, esc(c.Title))
	for _, s := range c.Series {
		w.f(`<th scope="col">%s</th>`, esc(s.Name))
	}
	w.f(`</tr></thead><tbody>`)
	idx := make([]int, len(c.Series))
	for _, t := range order {
		w.f(`<tr><th scope="row">%s</th>`, esc(t.UTC().Format(layout)))
		for i, s := range c.Series {
			v := ""
			for idx[i] < len(s.Points) && s.Points[idx[i]].T.Before(t) {
				idx[i]++
			}
			if idx[i] < len(s.Points) && s.Points[idx[i]].T.Equal(t) {
				v = FormatValue(s.Points[idx[i]].V, c.Format)
			}
			w.f(`<td>%s</td>`, esc(v))
		}
		w.f(`</tr>`)
	}
	if len(order) == 0 {
		w.f(`<tr><td colspan="%d">No data in this range.</td></tr>`, len(c.Series)+1)
	}
	w.f(`</tbody></table></details>`)
}

func sortTimes(ts []time.Time) {
	// insertion sort: series are already in order, so this is linear in practice
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}
