package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPurpose(t *testing.T) {
	for _, tc := range []struct {
		p        Purpose
		name     string
		keepConn bool
	}{
		{Exchange, "exchange", true},
		{Recover, "recover", false},
		{Join, "join", false},
		{Rumor, "rumor", false},
		{Push, "push", false},
		{Announce, "announce", false},
		{0, "Purpose(0)", false},
		{42, "Purpose(42)", false},
	} {
		if got := tc.p.String(); got != tc.name {
			t.Errorf("Purpose(%d).String() = %q, want %q", int(tc.p), got, tc.name)
		}
		if got := tc.p.KeepConn(); got != tc.keepConn {
			t.Errorf("%s.KeepConn() = %v, want %v", tc.name, got, tc.keepConn)
		}
	}
}

func TestOutputIsPerInput(t *testing.T) {
	// Each input returns what it made, and only that.
	m := newMember(t)
	out := m.mergeAt(full(peer(0), 5, 5, "x"))
	assert.Len(t, out.Events, 1)
	assert.Equal(t, Output{}, m.Sweep(m.now), "a sweep with nothing to do")
	assert.Equal(t, Output{}, m.mergeAt(full(peer(0), 5, 5, "x")), "a merge that changes nothing")
	out = m.Tick(m.now.Add(time.Second), nil)
	assert.Empty(t, out.Events, "the merge's event is not given twice")
}

func TestDebugRecordsNamePeer(t *testing.T) {
	m := newMember(t, func(c *Config) { c.Debug = true })
	out := m.mergeAt(full(peer(0), 5, 5, "x"))
	assert.Equal(t, []Log{{Level: Debug, Msg: "gossip: member joined", Fields: []any{"peer", peer(0)}}}, out.Logs)
}
