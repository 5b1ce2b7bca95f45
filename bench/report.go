package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// stat is the median of one metric over the runs of one library and n.
type stat struct {
	Median   float64 `json:",omitempty"`
	TimedOut bool    `json:",omitempty"` // the median run timed out
	Runs     int
	Timeouts int `json:",omitempty"`
}

// row is one line of the table: a metric at one n, for both libraries.
type row struct {
	Metric     string
	N          int
	Ours       *stat    `json:",omitempty"`
	Memberlist *stat    `json:",omitempty"`
	Ratio      *float64 `json:",omitempty"` // ours / memberlist
}

// median returns the median of the samples' values, a timed-out sample
// counting as longer than any other. With an even count it is the mean of
// the middle two, unless one of them timed out.
func median(samples []sample) stat {
	s := stat{Runs: len(samples)}
	if len(samples) == 0 {
		return s
	}
	vs := make([]float64, len(samples))
	for i, x := range samples {
		vs[i] = x.Value
		if x.TimedOut {
			vs[i] = math.Inf(1)
			s.Timeouts++
		}
	}
	sort.Float64s(vs)
	m := len(vs) / 2
	v := vs[m]
	if len(vs)%2 == 0 {
		v = (vs[m-1] + vs[m]) / 2
	}
	if math.IsInf(v, 1) {
		s.TimedOut = true
		return s
	}
	s.Median = v
	return s
}

// ratio is ours / memberlist, or nil where it means nothing: a side missing
// or timed out, or a zero denominator.
func ratio(ours, ml *stat) *float64 {
	if ours == nil || ml == nil || ours.TimedOut || ml.TimedOut || ml.Median == 0 {
		return nil
	}
	r := ours.Median / ml.Median
	return &r
}

// summarize groups the samples into rows, in metric order then by n.
func summarize(samples []sample) []row {
	type key struct {
		metric, lib string
		n           int
	}
	groups := make(map[key][]sample)
	ns := make(map[int]bool)
	for _, s := range samples {
		k := key{s.Metric, s.Lib, s.N}
		groups[k] = append(groups[k], s)
		ns[s.N] = true
	}
	var sizes []int
	for n := range ns {
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)
	var rows []row
	for _, m := range metrics {
		for _, n := range sizes {
			r := row{Metric: m.name, N: n}
			if g := groups[key{m.name, libOurs, n}]; len(g) > 0 {
				st := median(g)
				r.Ours = &st
			}
			if g := groups[key{m.name, libMemberlist, n}]; len(g) > 0 {
				st := median(g)
				r.Memberlist = &st
			}
			if r.Ours == nil && r.Memberlist == nil {
				continue
			}
			r.Ratio = ratio(r.Ours, r.Memberlist)
			rows = append(rows, r)
		}
	}
	return rows
}

// formatStat shows a median with three significant figures or so, "timeout"
// if the median run timed out, and "-" if there is none. Runs that timed
// out are counted beside it.
func formatStat(s *stat) string {
	if s == nil {
		return "-"
	}
	out := "timeout"
	if !s.TimedOut {
		out = formatNumber(s.Median)
	}
	if s.Timeouts > 0 {
		out += fmt.Sprintf(" (%d/%d timed out)", s.Timeouts, s.Runs)
	}
	return out
}

func formatNumber(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return formatNumber(*r)
}

func metricLabel(name string) string {
	for _, m := range metrics {
		if m.name == name && m.unit == "s" {
			return name + " (s)"
		}
	}
	return name
}

// writeTable prints the rows aligned in columns, or as a markdown table.
func writeTable(w io.Writer, rows []row, markdown bool) error {
	header := []string{"metric", "n", libOurs, libMemberlist, "ours/memberlist"}
	lines := [][]string{header}
	for _, r := range rows {
		lines = append(lines, []string{metricLabel(r.Metric), fmt.Sprint(r.N), formatStat(r.Ours), formatStat(r.Memberlist), formatRatio(r.Ratio)})
	}
	return writeLines(w, lines, markdown)
}

// writeLines prints lines, the first a header, aligned in columns or as a
// markdown table whose first column is aligned left and the others right.
func writeLines(w io.Writer, lines [][]string, markdown bool) error {
	if markdown {
		var b strings.Builder
		for i, l := range lines {
			b.WriteString("| " + strings.Join(l, " | ") + " |\n")
			if i == 0 {
				b.WriteString("|---|" + strings.Repeat("--:|", len(l)-1) + "\n")
			}
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t"))
	}
	return tw.Flush()
}

// results is what -json writes.
type results struct {
	Date       string
	Command    string
	GoVersion  string
	NumCPU     int
	GOMAXPROCS int
	Options    map[string]string
	Rows       []row
	Samples    []sample
}

func writeJSON(w io.Writer, r results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// The metrics plotted against n, one panel each.
var plotted = []string{"converge", "detect last", "data last"}

// newLogPanel returns an empty panel with the number of members on a log
// scale.
func newLogPanel(title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "members"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	return p
}

// writePlot draws the time metrics against n for both libraries, a panel
// per metric, as a PNG.
func writePlot(path string, rows []row) error {
	var panels []*plot.Plot
	for _, metric := range plotted {
		p := newLogPanel(metric, "seconds")
		p.Legend.Top = true
		p.Legend.Left = true
		for k, lib := range []string{libOurs, libMemberlist} {
			var pts plotter.XYs
			for _, r := range rows {
				s := r.Ours
				if lib == libMemberlist {
					s = r.Memberlist
				}
				if r.Metric == metric && s != nil && !s.TimedOut {
					pts = append(pts, plotter.XY{X: float64(r.N), Y: s.Median})
				}
			}
			if len(pts) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			c := color.RGBA{R: 200, G: 40, B: 40, A: 255}
			if k == 1 {
				c = color.RGBA{R: 40, G: 80, B: 200, A: 255}
				points.Shape = draw.SquareGlyph{}
			}
			line.Color, points.Color = c, c
			p.Add(line, points)
			p.Legend.Add(lib, line, points)
		}
		panels = append(panels, p)
	}
	return savePanels(path, [][]*plot.Plot{panels}, 30*vg.Centimeter, 10*vg.Centimeter)
}
