package protocol

import (
	"slices"
	"time"
)

// Seeds and dead members.
//
// A member joins through its seeds, and a partition heals when a member
// contacts one it had declared dead and finds it alive. Each round with no
// live peer, a member contacts every seed that is due; otherwise, with
// probability 1/(live peers + 1), one due seed or dead member chosen at
// random. A name that does not answer is retried with backoff: its delay
// doubles from one round to maxRetryRounds rounds (maxAloneRetryRounds, with
// jitter, while the member has no live peer), and an answer resets it.
// A seed that does not answer is worth one warning to an operator (a typo, a
// firewall), and one line at info level when it answers at last.

// maxRetryRounds caps the backoff of an unreachable seed, in gossip rounds.
const maxRetryRounds = 32

// maxAloneRetryRounds caps it, in rounds, while the member knows no live
// peer (see recover).
const maxAloneRetryRounds = 4

// retryState is the backoff of a seed or dead member being contacted.
type retryState struct {
	next   time.Time
	delay  time.Duration
	warned bool // a seed's failure was logged at warning level
}

// recover asks for the seeds and dead members due for a contact: all due
// seeds while alone (joining), else one due candidate picked at random. Each
// is marked as attempted; Contacted resets or extends its backoff.
func (s *State) recover(now time.Time, alone bool) {
	var due []string
	consider := func(name string) {
		r := s.retry[name]
		if r == nil {
			r = &retryState{delay: s.cfg.Interval}
			s.retry[name] = r
		}
		if !now.Before(r.next) {
			due = append(due, name)
		}
	}
	for _, name := range s.cfg.Seeds {
		if e := s.table.members[name]; (e == nil || !e.alive) && !s.aliases[name] {
			consider(name)
		}
	}
	if !alone || len(due) == 0 {
		for _, e := range s.table.list {
			if !e.alive && !e.left && !slices.Contains(s.cfg.Seeds, e.addr) {
				consider(e.addr)
			}
		}
	}
	if len(due) == 0 {
		return
	}
	p := Join
	if !alone {
		i := s.rng.IntN(len(due))
		due, p = due[i:i+1], Recover
	}
	for _, name := range due {
		delay := s.retry[name].delay
		if alone {
			// A joiner's seed may be there but busy: a cluster of many
			// starting together, its seeds closing the connections
			// beyond their bound. Nobody knows the joiner yet, so only
			// its own retries get it in: they come at least every
			// maxAloneRetryRounds, at a random point of the delay's
			// second half, so that joiners turned away together do not
			// come back together.
			delay = min(delay, maxAloneRetryRounds*s.cfg.Interval)
			delay = delay/2 + time.Duration(s.rng.Int64N(int64(delay/2)+1))
		}
		s.retry[name].next = now.Add(delay)
		s.out.Contacts = append(s.out.Contacts, Target{Name: name, Purpose: p})
	}
}

// Contacted records the outcome of contacting name (a Target of Tick) at
// time now: ok if any of its addresses answered. Success clears its
// backoff; failure doubles it, up to maxRetryRounds rounds. A seed's first
// failure is logged at warning level with err, and its answer after that at
// info level.
func (s *State) Contacted(name string, ok bool, err error, now time.Time) Output {
	r := s.retry[name]
	if r == nil {
		return Output{}
	}
	seed := slices.Contains(s.cfg.Seeds, name)
	switch {
	case ok:
		r.delay, r.next = s.cfg.Interval, time.Time{}
		if r.warned {
			r.warned = false
			s.log(Info, "gossip: seed answered", "seed", name)
		}
	default:
		r.delay = min(2*r.delay, maxRetryRounds*s.cfg.Interval)
		if seed && !r.warned && s.phase == running {
			r.warned = true
			fields := []any{"seed", name, "retry", "with backoff, up to every " + (maxRetryRounds * s.cfg.Interval).String()}
			if err != nil {
				fields = append(fields, "error", err)
			}
			s.log(Warn, "gossip: seed does not answer", fields...)
		}
	}
	return s.flush()
}

// Backoff returns the delay before name is contacted again after a
// failure, or 0 if name is not being contacted.
func (s *State) Backoff(name string) time.Duration {
	if r := s.retry[name]; r != nil {
		return r.delay
	}
	return 0
}
