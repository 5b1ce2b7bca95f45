package protocol

import "time"

// Pacing rumors.
//
// The state machine decides what news to spread and to whom (rumor.go);
// its caller decides when, with a Pacer. A spread comes at least a rumor
// gap (RumorGap: a tenth of the interval, at most 50 ms) after the last, so
// that rumors arriving meanwhile go together, and within a budget:
// rumorBurst spreads at once, then rumorRate per gossip interval. A single
// change spreads at once; a storm of changes (a thousand members joining)
// costs each member at most rumorRate × RumorFanout messages a round on top
// of its exchange, and the periodic exchange carries the rest.
const (
	rumorBurst = 8
	rumorRate  = 1
)

// Pacer holds the gap and the budget between one member's spreads. It is
// not safe for concurrent use.
type Pacer struct {
	gap    time.Duration
	next   time.Time // the earliest time of the next spread
	tokens float64
	last   time.Time
	per    time.Duration // to earn one spread
}

// NewPacer returns the pacer of a member gossiping every interval.
func NewPacer(interval time.Duration) *Pacer {
	return &Pacer{gap: RumorGap(interval), tokens: rumorBurst, per: interval / rumorRate}
}

// Wait returns 0 and counts a spread at time now if one may be made then;
// otherwise it returns how long until one may.
func (p *Pacer) Wait(now time.Time) time.Duration {
	if d := p.next.Sub(now); d > 0 {
		return d
	}
	if !p.last.IsZero() {
		p.tokens = min(rumorBurst, p.tokens+float64(now.Sub(p.last))/float64(p.per))
	}
	p.last = now
	if p.tokens < 1 {
		return time.Duration((1 - p.tokens) * float64(p.per))
	}
	p.tokens--
	p.next = now.Add(p.gap)
	return 0
}
