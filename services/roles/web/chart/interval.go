package chart

import (
	"html/template"
	"math"
)

// Row is one estimate with its interval (a variation's conversion rate, or its uplift).
type Row struct {
	Label    string
	Estimate float64
	Low      float64
	High     float64
	// Highlight draws the row in the accent (the control, or the variation chosen).
	Highlight bool
}

// Interval is a forest plot: one horizontal interval per row with its estimate as a dot, and an
// optional reference line (0 for uplift, the control's estimate for rates).
type Interval struct {
	ID, Title, Desc string
	Rows            []Row
	Format          Format
	Reference       *float64
	Accent          string
}

const (
	rowHeight   = 28
	labelWidth  = 160
	valueWidth  = 170
	intervalPad = 12
)

// HTML renders the forest plot with its data table.
func (c Interval) HTML() template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range c.Rows {
		for _, v := range []float64{r.Low, r.High, r.Estimate} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if c.Reference != nil {
		lo, hi = math.Min(lo, *c.Reference), math.Max(hi, *c.Reference)
	}
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 0, 1
	}
	if hi <= lo {
		lo, hi = lo-0.5, hi+0.5
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	h := marginTop + rowHeight*len(c.Rows) + 28
	plotL, plotR := float64(labelWidth+intervalPad), float64(width-valueWidth-intervalPad)
	x := func(v float64) float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = math.Max(lo, math.Min(hi, v))
		}
		return plotL + (plotR-plotL)*(v-lo)/(hi-lo)
	}
	cols := colors(c.Accent, 2)
	accent, plain := cols[0], "#3b4048"
	if SafeColor(c.Accent) == "" {
		accent = Palette[0]
	}

	var w svgWriter
	w.f(`<figure class="chart" id="%s">`, esc(c.ID))
	w.f(`<svg viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">`,
		width, h, esc(c.ID), esc(c.ID))
	w.f(`<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, esc(c.ID), esc(c.Title), esc(c.ID), esc(c.Desc))
	bottom := marginTop + rowHeight*len(c.Rows)
	if c.Reference != nil {
		rx := x(*c.Reference)
		w.f(`<line x1="%s" x2="%s" y1="%d" y2="%d" stroke="#3b4048" stroke-width="1" stroke-dasharray="4 3"/>`, num(rx), num(rx), marginTop-6, bottom)
	}
	for i, r := range c.Rows {
		cy := float64(marginTop + rowHeight*i + rowHeight/2)
		col := plain
		if r.Highlight {
			col = accent
		}
		w.f(`<text x="0" y="%s" font-size="12" fill="#1f2328">%s</text>`, num(cy+4), esc(r.Label))
		w.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="3" stroke-linecap="round"/>`, num(x(r.Low)), num(x(r.High)), num(cy), num(cy), col)
		w.f(`<circle cx="%s" cy="%s" r="5" fill="%s"/>`, num(x(r.Estimate)), num(cy), col)
		w.f(`<text x="%d" y="%s" font-size="12" fill="#1f2328">%s [%s, %s]</text>`, width-valueWidth, num(cy+4),
			esc(FormatValue(r.Estimate, c.Format)), esc(FormatValue(r.Low, c.Format)), esc(FormatValue(r.High, c.Format)))
	}
	// Axis: the ends and the reference.
	w.f(`<line x1="%s" x2="%s" y1="%d" y2="%d" stroke="#d0d4da" stroke-width="1"/>`, num(plotL), num(plotR), bottom+2, bottom+2)
	w.f(`<text x="%s" y="%d" text-anchor="start" font-size="11" fill="#3b4048">%s</text>`, num(plotL), bottom+18, esc(FormatValue(lo, c.Format)))
	w.f(`<text x="%s" y="%d" text-anchor="end" font-size="11" fill="#3b4048">%s</text>`, num(plotR), bottom+18, esc(FormatValue(hi, c.Format)))
	w.f(`</svg>`)
	w.f(`<details><summary>%s: the numbers</summary><table class="data"><thead><tr><th scope="col">Row</th><th scope="col">Estimate</th><th scope="col">95%% interval low</th><th scope="col">95%% interval high</th></tr></thead><tbody>`, esc(c.Title))
	for _, r := range c.Rows {
		w.f(`<tr><th scope="row">%s</th><td>%s</td><td>%s</td><td>%s</td></tr>`, esc(r.Label),
			esc(FormatValue(r.Estimate, c.Format)), esc(FormatValue(r.Low, c.Format)), esc(FormatValue(r.High, c.Format)))
	}
	w.f(`</tbody></table></details></figure>`)
	return template.HTML(w.String()) //nolint:gosec // every text above is escaped
}
