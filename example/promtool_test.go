package main

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// promtoolCheck runs `promtool check metrics` on an exposition and returns
// its output and whether it passed.
func promtoolCheck(t *testing.T, path string, exposition []byte) (string, bool) {
	t.Helper()
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "running promtool: %s", out)
		return string(out), false
	}
	return string(out), true
}

// TestPromtoolCheckMetrics: Prometheus' own linter accepts a real member's
// /metrics. It is skipped where promtool is not installed.
func TestPromtoolCheckMetrics(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipped: promtool not found on $PATH; on Debian: apt-get install prometheus")
	}
	// promtool finds faults: a counter without _total, a name in two types.
	out, ok := promtoolCheck(t, path, []byte("# HELP bad_count Bad.\n# TYPE bad_count counter\nbad_count 1\n"))
	require.False(t, ok, "promtool passes a counter without _total: %s", out)
	assert.Contains(t, out, "_total", "promtool names the fault")

	nodes := startNodes(t, Service{Name: "web"}, Service{Name: "db"})
	resp, err := http.Get(nodes[0].srv.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `gossip_members{state="alive"} 2`)
	out, ok = promtoolCheck(t, path, body)
	assert.True(t, ok, "promtool check metrics fails on /metrics:\n%s\n%s", out, body)
}
