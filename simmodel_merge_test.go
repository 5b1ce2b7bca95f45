package gossip

import (
	"slices"
	"testing"
	"time"
)

// modelEntry is one entry of the model, for tests.
type modelEntry struct {
	state uint8
	hb    int32
	ver   uint8
}

func (m *simModel) entry(i, k int) modelEntry {
	x := i*m.n + k
	return modelEntry{m.state[x], m.hb[x], m.ver[x]}
}

func (m *simModel) setEntry(i, k int, e modelEntry) {
	x := i*m.n + k
	if m.state[x] == modelAlive {
		m.live[i]--
	}
	if e.state == modelAlive {
		m.live[i]++
	}
	m.state[x], m.hb[x], m.ver[x] = e.state, e.hb, e.ver
}

// TestModelMerge checks the model's merge of one entry, member 1's of
// member 2, against the library's rules (mergeEntryLocked): in a request
// (a digest, without data) from member 0, and in an answer or a push (with
// data).
func TestModelMerge(t *testing.T) {
	m := newSimModel(3, 0, 0, 1)
	// Member 1 sees 2 members alive while it holds member 2 dead.
	margin := int32(cleanupTime(failureTime(2, time.Second, Nfailures)) / time.Second)
	tests := []struct {
		name     string
		held     modelEntry // member 1's entry of member 2
		sent     modelEntry // member 0's
		request  modelEntry // member 1's after the request
		wantData bool       // the request asks for 2's data
		withData modelEntry // member 1's after the entry came with data
	}{
		{"newer heartbeat", modelEntry{modelAlive, 5, 0}, modelEntry{modelAlive, 7, 0},
			modelEntry{modelAlive, 7, 0}, false, modelEntry{modelAlive, 7, 0}},
		{"older heartbeat", modelEntry{modelAlive, 9, 0}, modelEntry{modelAlive, 7, 0},
			modelEntry{modelAlive, 9, 0}, false, modelEntry{modelAlive, 9, 0}},
		{"newer data", modelEntry{modelAlive, 5, 0}, modelEntry{modelAlive, 7, 1},
			modelEntry{modelAlive, 7, 0}, true, modelEntry{modelAlive, 7, 1}},
		{"not gossiped: dead at the sender", modelEntry{modelAlive, 5, 0}, modelEntry{modelDead, 7, 1},
			modelEntry{modelAlive, 5, 0}, false, modelEntry{modelAlive, 5, 0}},
		{"unknown member", modelEntry{modelUnknown, 0, 0}, modelEntry{modelAlive, 7, 0},
			modelEntry{modelUnknown, 0, 0}, true, modelEntry{modelAlive, 7, 0}},
		{"dead, stale gossip", modelEntry{modelDead, 5, 0}, modelEntry{modelAlive, 5 + margin, 0},
			modelEntry{modelDead, 5, 0}, false, modelEntry{modelDead, 5, 0}},
		{"dead, back", modelEntry{modelDead, 5, 0}, modelEntry{modelAlive, 6 + margin, 0},
			modelEntry{modelAlive, 6 + margin, 0}, false, modelEntry{modelAlive, 6 + margin, 0}},
		{"dead, back with new data", modelEntry{modelDead, 5, 0}, modelEntry{modelAlive, 6 + margin, 1},
			modelEntry{modelDead, 5, 0}, true, modelEntry{modelAlive, 6 + margin, 1}},
	}
	for _, tt := range tests {
		m.setEntry(1, 2, tt.held)
		m.setEntry(0, 2, tt.sent)
		m.request(0, 1)
		if got := m.entry(1, 2); got != tt.request {
			t.Errorf("%s: after the request got %+v, want %+v", tt.name, got, tt.request)
		}
		if got := slices.Contains(m.want, 2); got != tt.wantData {
			t.Errorf("%s: request asks for the data: got %v, want %v", tt.name, got, tt.wantData)
		}

		m.setEntry(1, 2, tt.held)
		if tt.sent.state == modelAlive {
			m.take(1, 2, tt.sent.hb, tt.sent.ver)
		}
		if got := m.entry(1, 2); got != tt.withData {
			t.Errorf("%s: with data got %+v, want %+v", tt.name, got, tt.withData)
		}
		wantLive := int32(2)
		if tt.withData.state == modelAlive {
			wantLive = 3
		}
		if got := m.live[1]; got != wantLive {
			t.Errorf("%s: member 1 sees %d members alive, want %d", tt.name, got, wantLive)
		}
	}
}
