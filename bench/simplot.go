package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The simulation plot (-sim): what the root module's simulation measured
// against n, next to what the failure-time formula predicts. Its input is
// the JSON that `go test ./internal/sim -run 'TestSimulation$' -sim.out FILE`
// writes (the members' own state machine over an in-memory network): a list
// of runs. Files of the compact model the project once had (source "model")
// are drawn too.

// plotSim reads the simulated runs of the JSON files paths, draws them into
// the PNG file out and prints their medians to w, as a markdown table if
// markdown is set.
func plotSim(paths []string, out string, w io.Writer, markdown bool) error {
	rs, err := readSimResults(paths)
	if err != nil {
		return err
	}
	if err := writeSimPlot(out, rs); err != nil {
		return err
	}
	return writeSimTable(w, summarizeSim(rs), markdown)
}

// writeSimTable prints the medians of each source, loss and n, with the
// formula's rounds beside them, aligned in columns or as a markdown table.
func writeSimTable(w io.Writer, points []simPoint, markdown bool) error {
	lines := [][]string{{"source", "n", "loss", "runs", "spread", "S(n)", "detect first", "detect last",
		"FailureTime", "FailureTime + S(n)", "false reports / rounds", "s/run"}}
	for _, p := range points {
		lines = append(lines, []string{p.Source, fmt.Sprint(p.N), fmt.Sprintf("%g%%", p.Loss*100), fmt.Sprint(p.Runs),
			fmt.Sprint(p.Spread), fmt.Sprint(p.Predicted), fmt.Sprint(p.DetectFirst), fmt.Sprint(p.DetectLast),
			fmt.Sprint(p.Failure), fmt.Sprint(p.Failure + p.Predicted), fmt.Sprintf("%d / %d", p.FalseReports, p.Rounds),
			formatNumber(p.Seconds)})
	}
	return writeLines(w, lines, markdown)
}

// simResult is one simulated run, as the root module's SimResult writes it.
// Rounds are gossip rounds.
type simResult struct {
	Source       string  `json:"source"` // "code" or "model"; empty in files older than the model: "code"
	N            int     `json:"n"`
	Loss         float64 `json:"loss"`
	SpreadRounds int     `json:"spread_rounds"`
	// HeartbeatSpread is the rounds a heartbeat took to reach every
	// member, in files of internal/sim, whose data changes travel by rumor
	// in a round or two; where present, it is the spread drawn against
	// S(n).
	HeartbeatSpread int     `json:"heartbeat_spread_rounds"`
	PredictedSpread int     `json:"predicted_spread"` // S(n)
	DetectFirst     int     `json:"detect_first"`
	DetectLast      int     `json:"detect_last"`
	FailureRounds   int     `json:"failure_rounds"` // FailureTime
	FalseReports    int     `json:"false_reports"`  // live members declared dead in the run
	Rounds          int     `json:"rounds"`
	Seconds         float64 `json:"seconds"`
}

// Sources of simulated runs, as the plot labels them.
const (
	srcCode  = "code"
	srcModel = "model"
)

// readSimResults reads and concatenates the runs of the JSON files.
func readSimResults(paths []string) ([]simResult, error) {
	var all []simResult
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var rs []simResult
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i := range rs {
			if rs[i].Source == "" {
				rs[i].Source = srcCode
			}
			if rs[i].HeartbeatSpread > 0 {
				rs[i].SpreadRounds = rs[i].HeartbeatSpread
			}
		}
		all = append(all, rs...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no simulated runs in %v", paths)
	}
	return all, nil
}

// simPoint is the medians over the runs of one source at one loss and n.
type simPoint struct {
	Source string
	Loss   float64
	N      int
	Runs   int
	// Measured medians, in rounds.
	Spread, DetectFirst, DetectLast float64
	// The formula's S(n) and FailureTime, in rounds.
	Predicted, Failure float64
	// False reports and rounds, summed over the runs; seconds a run took
	// (median).
	FalseReports, Rounds int
	Seconds              float64
}

// summarizeSim returns the medians of each source, loss and n, ordered by
// loss, n and source.
func summarizeSim(rs []simResult) []simPoint {
	type key struct {
		source string
		loss   float64
		n      int
	}
	groups := make(map[key][]simResult)
	var keys []key
	for _, r := range rs {
		k := key{r.Source, r.Loss, r.N}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.loss != b.loss {
			return a.loss < b.loss
		}
		if a.n != b.n {
			return a.n < b.n
		}
		return a.source < b.source
	})
	med := func(g []simResult, f func(simResult) float64) float64 {
		s := make([]sample, len(g))
		for i, r := range g {
			s[i].Value = f(r)
		}
		return median(s).Median
	}
	out := make([]simPoint, len(keys))
	for i, k := range keys {
		g := groups[k]
		p := simPoint{Source: k.source, Loss: k.loss, N: k.n, Runs: len(g),
			Spread:      med(g, func(r simResult) float64 { return float64(r.SpreadRounds) }),
			DetectFirst: med(g, func(r simResult) float64 { return float64(r.DetectFirst) }),
			DetectLast:  med(g, func(r simResult) float64 { return float64(r.DetectLast) }),
			Predicted:   med(g, func(r simResult) float64 { return float64(r.PredictedSpread) }),
			Failure:     med(g, func(r simResult) float64 { return float64(r.FailureRounds) }),
			Seconds:     med(g, func(r simResult) float64 { return r.Seconds }),
		}
		for _, r := range g {
			p.FalseReports += r.FalseReports
			p.Rounds += r.Rounds
		}
		out[i] = p
	}
	return out
}

// The plot's colours and glyphs: a measurement keeps its colour across
// sources; the model's medians are joined by lines, the code's are rings.
var (
	colSpread  = color.RGBA{R: 40, G: 80, B: 200, A: 255}
	colFirst   = color.RGBA{R: 40, G: 150, B: 60, A: 255}
	colLast    = color.RGBA{R: 200, G: 40, B: 40, A: 255}
	colFormula = color.RGBA{A: 255}
)

// writeSimPlot draws the simulated runs as a PNG: a row of two panels per
// loss rate, spread against n with S(n), and detection (first and last
// member) against n with FailureTime and FailureTime + S(n).
func writeSimPlot(path string, rs []simResult) error {
	points := summarizeSim(rs)
	var losses []float64
	for _, p := range points {
		if !slices.Contains(losses, p.Loss) {
			losses = append(losses, p.Loss)
		}
	}
	sort.Float64s(losses)
	if len(losses) == 0 {
		return fmt.Errorf("no simulated runs to plot")
	}
	var grid [][]*plot.Plot
	for _, loss := range losses {
		var at []simPoint
		for _, p := range points {
			if p.Loss == loss {
				at = append(at, p)
			}
		}
		spread, detect, err := simPanels(at, loss)
		if err != nil {
			return err
		}
		grid = append(grid, []*plot.Plot{spread, detect})
	}
	return savePanels(path, grid, 30*vg.Centimeter, vg.Length(len(grid))*11*vg.Centimeter)
}

// simPanels draws the spread and the detection panels of one loss rate.
func simPanels(at []simPoint, loss float64) (spread, detect *plot.Plot, err error) {
	spread = newSimPanel(fmt.Sprintf("spread of a heartbeat, loss %g%%", loss*100))
	detect = newSimPanel(fmt.Sprintf("detection by the failure time, loss %g%%", loss*100))
	formula := func(p *plot.Plot, label string, dashes []vg.Length, f func(simPoint) float64) error {
		return addSeries(p, label, formulaPoints(at, f), colFormula, nil, 0, dashes)
	}
	if err := formula(spread, "S(n)", nil, func(p simPoint) float64 { return p.Predicted }); err != nil {
		return nil, nil, err
	}
	if err := formula(detect, "FailureTime", nil, func(p simPoint) float64 { return p.Failure }); err != nil {
		return nil, nil, err
	}
	if err := formula(detect, "FailureTime + S(n)", []vg.Length{vg.Points(4), vg.Points(3)}, func(p simPoint) float64 { return p.Failure + p.Predicted }); err != nil {
		return nil, nil, err
	}
	for _, src := range []string{srcModel, srcCode} {
		// The model's medians as dots on a line, the code's as rings
		// wide enough to show around the model's dot where they agree.
		glyph, radius, dashes := draw.GlyphDrawer(draw.RingGlyph{}), vg.Points(6), []vg.Length(nil)
		if src == srcModel {
			glyph, radius, dashes = draw.CircleGlyph{}, vg.Points(3), []vg.Length{}
		}
		for _, s := range []struct {
			p     *plot.Plot
			label string
			c     color.Color
			f     func(simPoint) float64
		}{
			{spread, "spread", colSpread, func(p simPoint) float64 { return p.Spread }},
			{detect, "first", colFirst, func(p simPoint) float64 { return p.DetectFirst }},
			{detect, "last", colLast, func(p simPoint) float64 { return p.DetectLast }},
		} {
			if err := addSeries(s.p, s.label+" ("+src+")", sourcePoints(at, src, s.f), s.c, glyph, radius, dashes); err != nil {
				return nil, nil, err
			}
		}
	}
	return spread, detect, nil
}

// newSimPanel returns an empty panel with n on a log scale and rounds from 0.
func newSimPanel(title string) *plot.Plot {
	p := newLogPanel(title, "rounds (median)")
	p.Y.Min = 0
	p.Legend.Top = false // bottom right: the curves rise to the right from well above 0
	p.Legend.Left = false
	return p
}

// formulaPoints is f at each n of at, once each, in order of n.
func formulaPoints(at []simPoint, f func(simPoint) float64) plotter.XYs {
	byN := make(map[int]float64)
	for _, p := range at {
		byN[p.N] = f(p)
	}
	var ns []int
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	pts := make(plotter.XYs, len(ns))
	for i, n := range ns {
		pts[i] = plotter.XY{X: float64(n), Y: byN[n]}
	}
	return pts
}

// sourcePoints is f at each point of source src, in order of n.
func sourcePoints(at []simPoint, src string, f func(simPoint) float64) plotter.XYs {
	var pts plotter.XYs
	for _, p := range at {
		if p.Source == src {
			pts = append(pts, plotter.XY{X: float64(p.N), Y: f(p)})
		}
	}
	return pts
}

// addSeries adds pts to p in colour c, as glyphs of radius r if glyph is
// set and as a line if dashes is non-nil (an empty dashes is a solid line),
// with label in the legend.
func addSeries(p *plot.Plot, label string, pts plotter.XYs, c color.Color, glyph draw.GlyphDrawer, r vg.Length, dashes []vg.Length) error {
	if len(pts) == 0 {
		return nil
	}
	var thumbs []plot.Thumbnailer
	if dashes != nil || glyph == nil {
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color, line.Dashes = c, dashes
		p.Add(line)
		thumbs = append(thumbs, line)
	}
	if glyph != nil {
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = c, glyph, r
		p.Add(sc)
		thumbs = append(thumbs, sc)
	}
	p.Legend.Add(label, thumbs...)
	return nil
}

// savePanels draws a grid of panels, rows by columns, into a PNG of width
// w and height h.
func savePanels(path string, grid [][]*plot.Plot, w, h vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3}
	canvases := plot.Align(grid, tiles, dc)
	for i, row := range grid {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
