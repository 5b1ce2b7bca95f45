package protocol

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seedA, seedB = "10.8.0.1:7000", "seed.example:7000"

// withSeeds configures seedA and seedB.
func withSeeds(c *Config) { c.Seeds = []string{seedA, seedB} }

// contacts returns out's contacts as "purpose name" strings.
func contacts(out Output) []string {
	var s []string
	for _, c := range out.Contacts {
		s = append(s, fmt.Sprintf("%s %s", c.Purpose, c.Name))
	}
	return s
}

func TestContacted(t *testing.T) {
	refused := errors.New("connection refused")
	type call struct {
		ok        bool
		err       error
		wantDelay time.Duration
		wantLog   string // "level msg", or ""
		wantError bool   // the log has an error field
	}
	for _, tc := range []struct {
		name  string
		who   string
		calls []call
	}{
		{"a seed that does not answer", seedA, []call{
			{false, refused, 2 * time.Second, "warn gossip: seed does not answer", true},
			{false, refused, 4 * time.Second, "", false},
			{false, refused, 8 * time.Second, "", false},
			{false, refused, 16 * time.Second, "", false},
			{false, refused, 32 * time.Second, "", false},
			{false, refused, 32 * time.Second, "", false},
		}},
		{"a seed that answers at last", seedA, []call{
			{false, refused, 2 * time.Second, "warn gossip: seed does not answer", true},
			{false, refused, 4 * time.Second, "", false},
			{true, nil, time.Second, "info gossip: seed answered", false},
			{false, refused, 2 * time.Second, "warn gossip: seed does not answer", true},
		}},
		{"a seed that answers at once", seedB, []call{
			{true, nil, time.Second, "", false},
			{true, nil, time.Second, "", false},
		}},
		{"no error given", seedA, []call{
			{false, nil, 2 * time.Second, "warn gossip: seed does not answer", false},
		}},
		{"a dead member's address", peer(0), []call{
			{false, refused, 2 * time.Second, "", false},
			{false, refused, 4 * time.Second, "", false},
			{true, nil, time.Second, "", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, withSeeds)
			m.mergeAt(full(peer(0), 100, 100, "x"))
			m.advance(m.FailureTime() + time.Second)
			m.Sweep(m.now)
			m.recover(m.now, false) // every seed and dead member is considered
			require.Equal(t, time.Second, m.Backoff(tc.who), "Backoff(%s) before any contact", tc.who)
			for i, c := range tc.calls {
				out := m.Contacted(tc.who, c.ok, c.err, m.now)
				if got := m.Backoff(tc.who); got != c.wantDelay {
					t.Errorf("call %d: Contacted(%s, ok=%v): Backoff() = %v, want %v", i, tc.who, c.ok, got, c.wantDelay)
				}
				var logs []string
				for _, l := range out.Logs {
					logs = append(logs, fmt.Sprintf("%s %s", levelName(l.Level), l.Msg))
				}
				if c.wantLog == "" {
					assert.Empty(t, logs, "call %d", i)
					continue
				}
				require.Equal(t, []string{c.wantLog}, logs, "call %d", i)
				fields := fieldMap(out.Logs[0].Fields)
				assert.Equal(t, tc.who, fields["seed"], "call %d: the seed is named", i)
				if c.wantError {
					assert.Equal(t, c.err, fields["error"], "call %d", i)
				} else {
					assert.NotContains(t, fields, "error", "call %d", i)
				}
				if !c.ok {
					assert.Equal(t, "with backoff, up to every 32s", fields["retry"], "call %d", i)
				}
			}
		})
	}
}

func TestContactedUnknownName(t *testing.T) {
	m := newMember(t, withSeeds)
	assert.Equal(t, Output{}, m.Contacted(seedA, false, errors.New("x"), m.now), "a name never asked for")
	assert.Zero(t, m.Backoff(seedA))
}

func TestContactedAfterLeaveDoesNotWarn(t *testing.T) {
	m := newMember(t, withSeeds)
	m.Tick(m.now, nil)
	m.Leave(m.now)
	out := m.Contacted(seedA, false, errors.New("x"), m.now)
	assert.Empty(t, out.Logs)
	assert.Equal(t, 2*time.Second, m.Backoff(seedA))
}

func TestBackoffDelaysContacts(t *testing.T) {
	m := newMember(t, func(c *Config) { c.Seeds = []string{seedA} })
	var at []time.Duration
	for i := 0; i < 200; i++ {
		out := m.Tick(m.now, nil)
		for _, c := range out.Contacts {
			require.Equal(t, Target{Name: seedA, Purpose: Join}, c)
			at = append(at, m.now.Sub(t0))
			m.Contacted(seedA, false, nil, m.now)
		}
		m.advance(time.Second)
	}
	// Tried at once; then, alone, after a delay that doubles from a round
	// but comes at least every maxAloneRetryRounds, at a random point of
	// its second half (whole rounds here, as Tick runs once a round).
	require.Equal(t, time.Duration(0), at[0])
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i]-at[i-1])
	}
	for i, g := range gaps {
		assert.GreaterOrEqual(t, g, time.Second, "gap %d", i)
		assert.LessOrEqual(t, g, maxAloneRetryRounds*time.Second, "gap %d: a joiner retries at least every %d rounds", i, maxAloneRetryRounds)
	}
	for i, g := range gaps[4:] {
		assert.GreaterOrEqual(t, g, maxAloneRetryRounds/2*time.Second, "gap %d: in the delay's second half", i+4)
	}
	assert.Greater(t, len(slices.Compact(slices.Sorted(slices.Values(gaps[4:])))), 1, "retries spread at random: %v", gaps)
	// The backoff itself still grows to maxRetryRounds, for the contacts
	// of a member that has peers.
	assert.Equal(t, maxRetryRounds*time.Second, m.Backoff(seedA))
}

// TestBackoffWithPeers: a member with live peers contacts a seed that is
// not among them after 1, 2, 4, ... rounds, up to every maxRetryRounds,
// without jitter (it picks one due candidate a round at random, with
// probability 1/(live peers + 1)).
func TestBackoffWithPeers(t *testing.T) {
	m := newMember(t, func(c *Config) { c.Seeds = []string{seedA} })
	m.join(t, 1)
	var at []time.Duration
	for i := 0; i < 400; i++ {
		m.mergeAt(full(peer(0), int64(200+i), 100, "d")) // peer 0 stays alive
		for _, c := range m.Tick(m.now, nil).Contacts {
			require.Equal(t, Target{Name: seedA, Purpose: Recover}, c)
			at = append(at, m.now.Sub(t0))
			m.Contacted(seedA, false, nil, m.now)
		}
		m.advance(time.Second)
	}
	require.NotEmpty(t, at)
	for i := 1; i < len(at); i++ {
		want := min(time.Second<<(i-1), maxRetryRounds*time.Second)
		assert.GreaterOrEqual(t, at[i]-at[i-1], want, "contact %d comes after the backoff", i)
	}
}

func TestRecoverTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup shapes the table; it returns whether the member is alone.
		setup func(t *testing.T, m *member) bool
		want  []string
	}{
		{"alone: every seed, to join", func(t *testing.T, m *member) bool { return true },
			[]string{"join " + seedA, "join " + seedB}},
		{"alone without seeds: a dead member", func(t *testing.T, m *member) bool {
			m.cfg.Seeds = nil
			m.mergeAt(full(peer(0), 100, 100, "x"))
			m.advance(m.FailureTime() + time.Second)
			m.Sweep(m.now)
			return true
		}, []string{"join " + peer(0)}},
		{"alone: seeds first, dead members while no seed is due", func(t *testing.T, m *member) bool {
			m.mergeAt(full(peer(0), 100, 100, "x"))
			m.advance(m.FailureTime() + time.Second)
			m.Sweep(m.now)
			return true
		}, []string{"join " + seedA, "join " + seedB}},
		{"a seed that is a live member is not contacted", func(t *testing.T, m *member) bool {
			m.join(t, 1)
			m.mergeAt(full(seedA, 100, 100, "x"))
			return true
		}, []string{"join " + seedB}},
		{"a seed found to be this member is not contacted", func(t *testing.T, m *member) bool {
			m.HandleResponse(seedB, Join, ExchangeResponse{From: selfAddr}, m.now)
			return true
		}, []string{"join " + seedA}},
		{"not alone: one target, to recover", func(t *testing.T, m *member) bool {
			m.cfg.Seeds = []string{seedA}
			return false
		}, []string{"recover " + seedA}},
		{"a member that left is not contacted", func(t *testing.T, m *member) bool {
			m.cfg.Seeds = nil
			m.mergeAt(full(peer(0), 100, 100, "x"))
			m.leftAt(t, peer(0), 101, 100)
			return false
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, withSeeds)
			alone := tc.setup(t, m)
			m.recover(m.now, alone)
			assert.ElementsMatch(t, tc.want, contacts(m.flush()))
		})
	}
}

func TestRecoverPicksAmongDue(t *testing.T) {
	// Not alone, a member picks one due seed or dead member at random; a
	// dead seed counts once.
	m := newMember(t, withSeeds)
	m.mergeAt(full(peer(0), 100, 100, "x"), full(seedA, 100, 100, "seed"))
	m.advance(m.FailureTime() + time.Second)
	m.Sweep(m.now)
	require.Len(t, m.Members(), 1)
	picked := map[string]int{}
	for range 300 {
		m.recover(m.now, false)
		out := m.flush()
		require.Len(t, out.Contacts, 1)
		picked[out.Contacts[0].Name]++
		m.Contacted(out.Contacts[0].Name, true, nil, m.now) // due again at once
	}
	assert.Len(t, picked, 3, "picked: %v", picked)
	for name, n := range picked {
		assert.InDelta(t, 100, n, 40, "%s picked %d times in 300", name, n)
	}
}

func levelName(l Level) string {
	switch l {
	case Debug:
		return "debug"
	case Info:
		return "info"
	case Warn:
		return "warn"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// fieldMap returns a log record's fields by key.
func fieldMap(fields []any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(fields); i += 2 {
		out[fmt.Sprint(fields[i])] = fields[i+1]
	}
	return out
}
