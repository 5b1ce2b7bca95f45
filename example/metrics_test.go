package main

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape gets url and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "the page parses as the Prometheus text format")
	return mfs
}

// value returns the value of the metric name with the label state, if
// given, or -1 if there is none.
func value(mfs map[string]*dto.MetricFamily, name, state string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
	for _, m := range mf.GetMetric() {
		ok := state == ""
		for _, l := range m.GetLabel() {
			ok = ok || l.GetName() == "state" && l.GetValue() == state
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestMetricsScrape(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web", Endpoint: "http://a"}, Service{Name: "web", Endpoint: "http://b"}, Service{Name: "db", Endpoint: "http://c"})
	url := nodes[0].srv.URL + "/metrics"
	mfs := scrape(t, url)

	assert.Equal(t, 3.0, value(mfs, "gossip_members", "alive"))
	assert.Equal(t, 0.0, value(mfs, "gossip_members", "failed"))
	assert.Equal(t, 0.0, value(mfs, "gossip_members", "left"))
	assert.Equal(t, nodes[0].g.FailureTime().Seconds(), value(mfs, "gossip_failure_time_seconds", ""))
	assert.GreaterOrEqual(t, value(mfs, "gossip_timeout_seconds", ""), value(mfs, "gossip_failure_time_seconds", ""))
	assert.Equal(t, dto.MetricType_GAUGE, mfs["gossip_unanswered_ratio"].GetType())
	assert.GreaterOrEqual(t, value(mfs, "gossip_unanswered_ratio", ""), 0.0)
	for _, name := range []string{
		"gossip_rounds_total", "gossip_messages_sent_total", "gossip_messages_received_total",
		"gossip_bytes_sent_total", "gossip_bytes_received_total", "gossip_merges_total", "gossip_merge_seconds_total",
	} {
		assert.Positive(t, value(mfs, name, ""), name)
		assert.Equal(t, dto.MetricType_COUNTER, mfs[name].GetType(), name)
	}
	for _, name := range []string{"gossip_rpc_errors_total", "gossip_rpc_timeouts_total", "gossip_event_overruns_total", "gossip_exchanges_skipped_total", "gossip_last_merge_seconds"} {
		assert.GreaterOrEqual(t, value(mfs, name, ""), 0.0, name)
	}
	for name, mf := range mfs {
		assert.True(t, strings.HasPrefix(name, "gossip_"), "only the member's own metrics: %s", name)
		assert.NotEmpty(t, mf.GetHelp(), name)
	}

	// Counters rise from scrape to scrape; a member that leaves is
	// counted as left.
	rounds := value(mfs, "gossip_rounds_total", "")
	require.NoError(t, nodes[2].g.Shutdown(t.Context()))
	require.Eventually(t, func() bool {
		mfs := scrape(t, url)
		return value(mfs, "gossip_rounds_total", "") > rounds &&
			value(mfs, "gossip_members", "alive") == 2 && value(mfs, "gossip_members", "left") == 1
	}, waitFor, tick, "the leaver is counted as left")
}
