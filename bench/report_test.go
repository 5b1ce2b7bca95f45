package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
)

func samples(values ...float64) []sample {
	var out []sample
	for _, v := range values {
		if v < 0 {
			out = append(out, sample{Value: 120, TimedOut: true})
			continue
		}
		out = append(out, sample{Value: v})
	}
	return out
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name   string
		values []float64 // -1 is a timed-out run
		want   stat
	}{
		{"none", nil, stat{}},
		{"one", []float64{2}, stat{Median: 2, Runs: 1}},
		{"odd", []float64{3, 1, 2}, stat{Median: 2, Runs: 3}},
		{"even", []float64{4, 1, 3, 2}, stat{Median: 2.5, Runs: 4}},
		{"one timeout of three", []float64{5, -1, 1}, stat{Median: 5, Runs: 3, Timeouts: 1}},
		{"two timeouts of three", []float64{-1, 1, -1}, stat{TimedOut: true, Runs: 3, Timeouts: 2}},
		{"timeout in the middle pair", []float64{1, -1}, stat{TimedOut: true, Runs: 2, Timeouts: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(samples(tt.values...)); got != tt.want {
				t.Errorf("median(%v) = %+v, want %+v", tt.values, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		name     string
		ours, ml *stat
		want     string
	}{
		{"both", &stat{Median: 3}, &stat{Median: 2}, "1.50"},
		{"ours missing", nil, &stat{Median: 2}, "-"},
		{"memberlist missing", &stat{Median: 2}, nil, "-"},
		{"zero denominator", &stat{Median: 0}, &stat{Median: 0}, "-"},
		{"ours timed out", &stat{TimedOut: true}, &stat{Median: 2}, "-"},
		{"memberlist timed out", &stat{Median: 2}, &stat{TimedOut: true}, "-"},
		{"large", &stat{Median: 1234}, &stat{Median: 2}, "617"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatRatio(ratio(tt.ours, tt.ml)); got != tt.want {
				t.Errorf("formatRatio(ratio(%+v, %+v)) = %q, want %q", tt.ours, tt.ml, got, tt.want)
			}
		})
	}
}

func TestFormatStat(t *testing.T) {
	tests := []struct {
		in   *stat
		want string
	}{
		{nil, "-"},
		{&stat{Median: 0.123, Runs: 3}, "0.12"},
		{&stat{Median: 12.34, Runs: 3}, "12.3"},
		{&stat{Median: 1234.5, Runs: 3}, "1234"},
		{&stat{TimedOut: true, Runs: 3, Timeouts: 2}, "timeout (2/3 timed out)"},
		{&stat{Median: 4, Runs: 3, Timeouts: 1}, "4.00 (1/3 timed out)"},
	}
	for _, tt := range tests {
		if got := formatStat(tt.in); got != tt.want {
			t.Errorf("formatStat(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSummarizeAndTable(t *testing.T) {
	var in []sample
	add := func(lib string, n int, metric string, values ...float64) {
		for i, s := range samples(values...) {
			s.Lib, s.N, s.Metric, s.Run = lib, n, metric, i+1
			in = append(in, s)
		}
	}
	add(libOurs, 32, "converge", 4, 5, 6)
	add(libMemberlist, 32, "converge", 1, 2, 3)
	add(libOurs, 8, "converge", 2, 2, 2)
	add(libMemberlist, 8, "detect last", 7, -1, 8)
	rows := summarize(in)

	var got []string
	for _, r := range rows {
		got = append(got, r.Metric+"/"+formatRatio(r.Ratio))
	}
	want := []string{"converge/-", "converge/2.50", "detect last/-"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("summarize rows = %v, want %v (metric order, then n)", got, want)
	}

	var text bytes.Buffer
	if err := writeTable(&text, rows, false); err != nil {
		t.Fatal(err)
	}
	wantText := `metric           n   ours  memberlist            ours/memberlist
converge (s)     8   2.00  -                     -
converge (s)     32  5.00  2.00                  2.50
detect last (s)  8   -     8.00 (1/3 timed out)  -
`
	if text.String() != wantText {
		t.Errorf("text table:\n%s\nwant:\n%s", text.String(), wantText)
	}

	var md bytes.Buffer
	if err := writeTable(&md, rows, true); err != nil {
		t.Fatal(err)
	}
	wantMD := `| metric | n | ours | memberlist | ours/memberlist |
|---|--:|--:|--:|--:|
| converge (s) | 8 | 2.00 | - | - |
| converge (s) | 32 | 5.00 | 2.00 | 2.50 |
| detect last (s) | 8 | - | 8.00 (1/3 timed out) | - |
`
	if md.String() != wantMD {
		t.Errorf("markdown table:\n%s\nwant:\n%s", md.String(), wantMD)
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseFlags([]string{"-quick", "-libs", "ours", "-n", "3,5"}, &stderr)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if len(c.sizes) != 2 || c.sizes[0] != 3 || c.sizes[1] != 5 {
		t.Errorf("sizes = %v, want [3 5] (an explicit -n wins over -quick)", c.sizes)
	}
	if c.runs != 1 || c.opts.lossTime != 10*time.Second {
		t.Errorf("-quick gave runs %d, loss-time %v; want 1, 10s", c.runs, c.opts.lossTime)
	}
	if c.opts.interval != 0 || c.opts.target != 0 {
		t.Errorf("interval, target = %v, %v by default; want 0, 0 (the library's defaults)", c.opts.interval, c.opts.target)
	}
	if got := oursInterval(c.opts); got != gossip.Tgossip {
		t.Errorf("oursInterval by default = %v, want Tgossip %v", got, gossip.Tgossip)
	}
	c, err = parseFlags([]string{"-interval", "200ms", "-target", "0.001"}, &stderr)
	if err != nil || c.opts.interval != 200*time.Millisecond || c.opts.target != 0.001 {
		t.Errorf("-interval 200ms -target 0.001 gave %v, %v, %v", c.opts.interval, c.opts.target, err)
	}
	if got, want := describeOurs(c.opts), "interval 200ms, false report target 0.001"; got != want {
		t.Errorf("describeOurs = %q, want %q", got, want)
	}
	c, err = parseFlags([]string{"-loss", "0.3", "-loss-time", "5m", "-pause", "40s", "-hog", "5", "-hog-time", "2m",
		"-scenarios", "silent,pause,hog"}, &stderr)
	if err != nil || c.opts.loss != 0.3 || c.opts.lossTime != 5*time.Minute || c.opts.pause != 40*time.Second ||
		c.opts.hogs != 5 || c.opts.hogTime != 2*time.Minute || len(c.scenarios) != 3 {
		t.Errorf("fault flags gave %+v, %v, %v", c.opts, c.scenarios, err)
	}
	if c, err = parseFlags([]string{"-quick"}, &stderr); err != nil || c.opts.pause <= 0 || c.opts.hogTime > 10*time.Second ||
		!slices.Contains(c.scenarios, scPause) || !slices.Contains(c.scenarios, scSilent) || !slices.Contains(c.scenarios, scHog) {
		t.Errorf("-quick gave pause %v, hog-time %v, scenarios %v, %v; want a short pause and window, every scenario",
			c.opts.pause, c.opts.hogTime, c.scenarios, err)
	}
	for _, bad := range [][]string{{"-n", "1"}, {"-libs", "serf"}, {"-scenarios", "nap"}, {"-runs", "0"}, {"-loss", "2"},
		{"-interval", "-1s"}, {"-target", "1"}, {"-target", "-0.1"}, {"-hog", "-1"}, {"-pause", "-1s"}, {"-hog-time", "0s"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}

func TestStreamConnCountsMessages(t *testing.T) {
	var w wire
	c := &streamConn{Conn: nopConn{}, w: &w}
	c.Write([]byte("req"))
	c.Write([]byte("uest")) // same message: nothing read back yet
	c.Read(make([]byte, 8))
	c.Write([]byte("next"))
	if bytes, msgs := w.traffic(); bytes != 11 || msgs != 2 {
		t.Errorf("traffic() = %d bytes, %d messages; want 11, 2", bytes, msgs)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := []sample{{Lib: libOurs, N: 8, Run: 1, Metric: "converge", Value: 2.5}, {Lib: libMemberlist, N: 8, Run: 1, Metric: "converge", Value: 120, TimedOut: true}}
	path := t.TempDir() + "/r.json"
	var stdout bytes.Buffer
	if err := writeJSONFile(path, &stdout, results{Samples: in, Rows: summarize(in)}); err != nil {
		t.Fatal(err)
	}
	got, err := readSamples(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) || got[0] != in[0] || got[1] != in[1] {
		t.Errorf("readSamples after writeJSONFile = %+v, want %+v", got, in)
	}
}
