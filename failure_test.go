package gossip

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFalseReportTargetConfig checks the shell's part of
// Config.FalseReportTarget: it is validated, and handed to the protocol
// with the default ExpectedLoss. The rule itself is tested in
// internal/protocol (TestTargetRounds).
func TestFalseReportTargetConfig(t *testing.T) {
	g, err := NewWithConfig(Config{Addr: unitAddr, GossipInterval: time.Second, FalseReportTarget: 1e-6, Logger: quietLogger(t)})
	require.NoError(t, err)
	assert.Equal(t, time.Duration(protocol.TargetRounds(1, 0.1, 1e-6))*time.Second, g.FailureTime(), "FailureTime() before Start")
	pc := g.protocolConfig(false)
	assert.Equal(t, 1e-6, pc.FalseReportTarget)
	assert.Equal(t, 0.1, pc.ExpectedLoss)
	_, err = NewWithConfig(Config{Addr: "127.0.0.1:0", FalseReportTarget: 2})
	assert.ErrorContains(t, err, "FalseReportTarget")
}
