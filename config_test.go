package gossip

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Addr is required"},
		{Config{Addr: "nope"}, "missing port"},
		{Config{Addr: "127.0.0.1:0", Seeds: []string{"x"}}, `seed "x"`},
		{Config{Addr: "127.0.0.1:0", Nfailures: -1}, "Nfailures"},
		{Config{Addr: "127.0.0.1:0", MaxDataSize: 10, MaxMessageSize: 5}, "exceeds MaxMessageSize"},
		{Config{Addr: "127.0.0.1:0", Data: make(chan int)}, "encode data"},
	} {
		err := newOrStart(t, tc.cfg)
		assert.ErrorContains(t, err, tc.want, "%+v", tc.cfg)
	}
	g, err := NewWithConfig(Config{Addr: "127.0.0.1:0", Logger: quietLogger(t)})
	require.NoError(t, err)
	require.NoError(t, g.Start())
	assert.ErrorIs(t, g.Start(), ErrStarted)
	g.Close()
}
