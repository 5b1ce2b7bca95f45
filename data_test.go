package gossip

import (
	"encoding/gob"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type registeredService struct {
	Name     string
	Endpoint string
	Tags     map[string]string
}

type unregisteredThing struct{ X int }

func init() { gob.Register(registeredService{}) }

func TestDataRoundTrip(t *testing.T) {
	for _, v := range []interface{}{
		nil, "web", 42, 3.5, true, []byte{1, 2, 3}, []string{"a", "b"},
		registeredService{Name: "web", Endpoint: "http://x", Tags: map[string]string{"zone": "a"}},
	} {
		b, err := encodeData(v, DefaultMaxDataSize)
		require.NoError(t, err, "encode %#v", v)
		assert.Equal(t, v, decodeData(b), "round trip of %#v", v)
	}
}

func TestDataDecodedAfreshForEachCaller(t *testing.T) {
	b, err := encodeData(registeredService{Tags: map[string]string{"k": "v"}}, DefaultMaxDataSize)
	require.NoError(t, err)
	first := decodeData(b).(registeredService)
	first.Tags["k"] = "changed"
	assert.Equal(t, "v", decodeData(b).(registeredService).Tags["k"])
}

func TestDataErrors(t *testing.T) {
	_, err := encodeData(unregisteredThing{1}, DefaultMaxDataSize)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gob.Register")

	_, err = encodeData(func() {}, DefaultMaxDataSize)
	require.Error(t, err, "a func cannot be encoded")

	_, err = encodeData(strings.Repeat("x", 2000), 1000)
	assert.True(t, errors.Is(err, ErrDataTooLarge), "got %v", err)
}

func TestUnregisteredDataDecodesToRawData(t *testing.T) {
	gob.RegisterName("gossip.testOnlyType", unregisteredElsewhere{})
	b, err := encodeData(unregisteredElsewhere{7}, DefaultMaxDataSize)
	require.NoError(t, err)
	// A process that has not registered the type sees a RawData: simulate it
	// by changing the registered name in the encoding.
	b = []byte(strings.Replace(string(b), "gossip.testOnlyType", "gossip.testOnlyTypX", 1))
	got, ok := decodeData(b).(RawData)
	require.True(t, ok, "got %T", decodeData(b))
	assert.Equal(t, "gossip.testOnlyTypX", got.Type)
	assert.Equal(t, b, got.Gob)
	assert.Contains(t, got.String(), "gossip.testOnlyTypX")

	// Passed on unchanged.
	again, err := encodeData(got, DefaultMaxDataSize)
	require.NoError(t, err)
	assert.Equal(t, b, again)
}

type unregisteredElsewhere struct{ Y int }

func TestUpdateDataKeepsOldDataOnError(t *testing.T) {
	g := newShellMember(t, newFakeClock(), unitAddr)
	require.NoError(t, g.UpdateData("good"))
	hb := g.lookup(unitAddr).Heartbeat
	assert.Error(t, g.UpdateData(unregisteredThing{2}))
	assert.ErrorIs(t, g.UpdateData(strings.Repeat("y", DefaultMaxDataSize)), ErrDataTooLarge)
	g.SetData(make(chan int)) // logged, not a panic
	assert.Equal(t, "good", g.GetMembers()[0].Data)
	assert.Equal(t, hb, g.lookup(unitAddr).Heartbeat, "a refused change does not count")
	require.NoError(t, g.UpdateData("better"))
	assert.Greater(t, g.lookup(unitAddr).Heartbeat, hb, "a data change counts the heartbeat up, so that it travels")
}

func TestNewRejectsBadData(t *testing.T) {
	bad, err := NewWithConfig(Config{Addr: "127.0.0.1:0", Data: unregisteredThing{}})
	require.Error(t, err)
	assert.Nil(t, bad, "no member with an error")
	g := New("127.0.0.1:0", unregisteredThing{}, nil)
	g.log = quietLogger(t)
	done := make(chan struct{})
	go func() { g.Run(); close(done) }()
	<-done // Run returns at once with the error logged
	assert.Error(t, g.Start())
	g.Close()
}

func TestUpdateDataAfterClose(t *testing.T) {
	g := startMember(t, testConfig(t))
	g.Close()
	assert.ErrorIs(t, g.UpdateData("late"), ErrClosed)
	assert.Empty(t, g.GetMembers(), "a closed member lists no one, not even itself")
}
