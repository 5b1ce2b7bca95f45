package main

import (
	"net/http"

	"github.com/gossipfd/gossip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves the member's Stats in the Prometheus text format,
// read afresh at each scrape, from a registry of its own (never the global
// one, so that two members in one process do not collide).
func metricsHandler(g *gossip.Gossip) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{g})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	membersDesc = prometheus.NewDesc("gossip_members",
		"Members in the table, by state: alive (this one included), failed (declared dead) or left; dead and left ones until forgotten.",
		[]string{"state"}, nil)
	failureTimeDesc = newDesc("gossip_failure_time_seconds", "Current FailureTime: how long a heartbeat may stay unchanged.")
	timeoutDesc     = newDesc("gossip_timeout_seconds", "How long a heartbeat may stay unchanged now: FailureTime, or longer while this member's own calls go unanswered.")
	unansweredDesc  = newDesc("gossip_unanswered_ratio", "Share of this member's last calls to others that went unanswered.")
	roundsDesc      = newDesc("gossip_rounds_total", "Gossip rounds.")
	sentDesc        = newDesc("gossip_messages_sent_total", "RPC requests made.")
	receivedDesc    = newDesc("gossip_messages_received_total", "RPC requests served.")
	bytesSentDesc   = newDesc("gossip_bytes_sent_total", "Bytes written to the member's connections.")
	bytesRecvDesc   = newDesc("gossip_bytes_received_total", "Bytes read from the member's connections.")
	errorsDesc      = newDesc("gossip_rpc_errors_total", "RPCs made that failed, timeouts included.")
	timeoutsDesc    = newDesc("gossip_rpc_timeouts_total", "RPCs made that timed out.")
	mergesDesc      = newDesc("gossip_merges_total", "Updates merged into the table.")
	mergeTimeDesc   = newDesc("gossip_merge_seconds_total", "Time spent merging updates.")
	lastMergeDesc   = newDesc("gossip_last_merge_seconds", "Time the last merge took.")
	overrunsDesc    = newDesc("gossip_event_overruns_total", "Membership events dropped because the reader fell behind.")
	skippedDesc     = newDesc("gossip_exchanges_skipped_total", "Rounds whose exchange was skipped while one was under way, answers having come more than half an interval late for 3 intervals.")
)

func newDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

// statsCollector turns a member's Stats into metrics on each scrape.
type statsCollector struct{ g *gossip.Gossip }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.Stats()
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	emit(membersDesc, prometheus.GaugeValue, float64(s.Alive), "alive")
	emit(membersDesc, prometheus.GaugeValue, float64(s.Failed), "failed")
	emit(membersDesc, prometheus.GaugeValue, float64(s.Left), "left")
	emit(failureTimeDesc, prometheus.GaugeValue, s.FailureTime.Seconds())
	emit(timeoutDesc, prometheus.GaugeValue, s.Timeout.Seconds())
	emit(unansweredDesc, prometheus.GaugeValue, s.Unanswered)
	emit(lastMergeDesc, prometheus.GaugeValue, s.LastMergeTime.Seconds())
	for _, c := range []struct {
		d *prometheus.Desc
		v float64
	}{
		{roundsDesc, float64(s.Rounds)},
		{sentDesc, float64(s.MessagesSent)},
		{receivedDesc, float64(s.MessagesReceived)},
		{bytesSentDesc, float64(s.BytesSent)},
		{bytesRecvDesc, float64(s.BytesReceived)},
		{errorsDesc, float64(s.RPCErrors)},
		{timeoutsDesc, float64(s.RPCTimeouts)},
		{mergesDesc, float64(s.Merges)},
		{mergeTimeDesc, s.MergeTime.Seconds()},
		{overrunsDesc, float64(s.EventOverruns)},
		{skippedDesc, float64(s.ExchangesSkipped)},
	} {
		emit(c.d, prometheus.CounterValue, c.v)
	}
}
