package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// simRuns writes runs as a JSON file in dir and returns its path.
func simRuns(t *testing.T, dir, name, json string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	modelJSON = `[
  {"source": "model", "n": 32, "loss": 0, "spread_rounds": 4, "predicted_spread": 6, "detect_first": 19, "detect_last": 22, "failure_rounds": 18, "rounds": 50, "seconds": 1},
  {"source": "model", "n": 32, "loss": 0, "spread_rounds": 6, "predicted_spread": 6, "detect_first": 19, "detect_last": 24, "failure_rounds": 18, "rounds": 50, "seconds": 2},
  {"source": "model", "n": 32, "loss": 0, "spread_rounds": 5, "predicted_spread": 6, "detect_first": 19, "detect_last": 23, "failure_rounds": 18, "rounds": 50, "seconds": 0.5},
  {"source": "model", "n": 1024, "loss": 0.1, "spread_rounds": 9, "predicted_spread": 11, "detect_first": 34, "detect_last": 41, "failure_rounds": 33, "rounds": 70, "seconds": 30}
]`
	// Written before runs had a source: the table code's.
	codeJSON = `[
  {"n": 32, "loss": 0, "spread_rounds": 4, "predicted_spread": 6, "detect_first": 19, "detect_last": 23, "failure_rounds": 18, "false_reports": 1, "rounds": 50, "seconds": 2},
  {"n": 32, "loss": 0, "spread_rounds": 5, "predicted_spread": 6, "detect_first": 19, "detect_last": 25, "failure_rounds": 18, "rounds": 50, "seconds": 3}
]`
	// internal/sim's: data spreads by rumor; the heartbeat's spread counts.
	stateJSON = `[
  {"source": "code", "n": 128, "loss": 0, "spread_rounds": 1, "heartbeat_spread_rounds": 7, "predicted_spread": 8, "detect_first": 24, "detect_last": 29, "failure_rounds": 24, "rounds": 150, "seconds": 1}
]`
)

func TestSummarizeSim(t *testing.T) {
	dir := t.TempDir()
	rs, err := readSimResults([]string{simRuns(t, dir, "model.json", modelJSON), simRuns(t, dir, "code.json", codeJSON), simRuns(t, dir, "state.json", stateJSON)})
	if err != nil {
		t.Fatal(err)
	}
	want := []simPoint{
		{Source: srcCode, Loss: 0, N: 32, Runs: 2, Spread: 4.5, DetectFirst: 19, DetectLast: 24, Predicted: 6, Failure: 18, FalseReports: 1, Rounds: 100, Seconds: 2.5},
		{Source: srcModel, Loss: 0, N: 32, Runs: 3, Spread: 5, DetectFirst: 19, DetectLast: 23, Predicted: 6, Failure: 18, Rounds: 150, Seconds: 1},
		{Source: srcCode, Loss: 0, N: 128, Runs: 1, Spread: 7, DetectFirst: 24, DetectLast: 29, Predicted: 8, Failure: 24, Rounds: 150, Seconds: 1},
		{Source: srcModel, Loss: 0.1, N: 1024, Runs: 1, Spread: 9, DetectFirst: 34, DetectLast: 41, Predicted: 11, Failure: 33, Rounds: 70, Seconds: 30},
	}
	got := summarizeSim(rs)
	if len(got) != len(want) {
		t.Fatalf("summarizeSim gave %d points, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("point %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadSimResultsErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		paths []string
	}{
		{"missing file", []string{filepath.Join(dir, "none.json")}},
		{"not JSON", []string{simRuns(t, dir, "bad.json", "{")}},
		{"no runs", []string{simRuns(t, dir, "empty.json", "[]")}},
	}
	for _, tt := range tests {
		if _, err := readSimResults(tt.paths); err == nil {
			t.Errorf("%s: readSimResults succeeded, want an error", tt.name)
		}
	}
}

func TestSimFlagDrawsAndPrintsWithoutRunning(t *testing.T) {
	dir := t.TempDir()
	in := simRuns(t, dir, "model.json", modelJSON) + "," + simRuns(t, dir, "code.json", codeJSON)
	out := filepath.Join(dir, "sim.png")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-sim", in, "-sim-plot", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -sim exited %d, want 0; stderr: %s", code, stderr.String())
	}
	wantTable := `source  n     loss  runs  spread  S(n)  detect first  detect last  FailureTime  FailureTime + S(n)  false reports / rounds  s/run
code    32    0%    2     4.5     6     19            24           18           24                  1 / 100                 2.50
model   32    0%    3     5       6     19            23           18           24                  0 / 150                 1.00
model   1024  10%   1     9       11    34            41           33           44                  0 / 70                  30.0
`
	if stdout.String() != wantTable {
		t.Errorf("run -sim printed\n%s\nwant the medians (and no benchmark run):\n%s", stdout.String(), wantTable)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("%s starts with %q, want a PNG", out, b[:min(len(b), 8)])
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"-sim", in, "-sim-plot", out, "-md"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -sim -md exited %d, want 0; stderr: %s", code, stderr.String())
	}
	if want := "| source | n | loss |"; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("run -sim -md printed %q, want a markdown table starting %q", stdout.String(), want)
	}
	if code := run(context.Background(), []string{"-sim", filepath.Join(dir, "none.json"), "-sim-plot", out}, &stdout, &stderr); code != 1 {
		t.Errorf("run -sim with a missing file exited %d, want 1", code)
	}
}
