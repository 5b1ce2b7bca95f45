package protocol

import (
	"fmt"
	"time"
)

// Output is what the shell must do after an input: send messages, contact
// seeds, deliver events, write logs, signal a change. Every input method of
// State returns the Output of that input alone.
type Output struct {
	// Send are the messages to send, in order.
	Send []Send
	// Contacts are seed names and dead members' addresses to contact: the
	// shell resolves each name, asks Request for each address, sends it
	// with the Target's purpose, and reports the outcome per name with
	// Contacted.
	Contacts []Target
	// FollowUps are exchanges to make a moment later (see HandleResponse).
	FollowUps []FollowUp
	// Events are the membership changes, in the order they happened.
	Events []Event
	// Logs are records for the shell's logger.
	Logs []Log
	// Changed tells that the live set or a member's data changed.
	Changed bool
	// Rumors tells that news waits to be spread: call Spread.
	Rumors bool
}

// Purpose says why a message is sent, which tells the shell how to send it
// and what to do with the answer.
type Purpose int

const (
	// Exchange is the round's exchange with its partner: the connection
	// is kept for later rounds (see ChoosePartner).
	Exchange Purpose = iota + 1
	// Recover is an exchange with a seed, a dead member or a seed
	// followed up, over a connection not kept.
	Recover
	// Join is Recover while this member knows no live peer: a seed that
	// answers is exchanged with again a moment later.
	Join
	// Rumor carries news (see rumor.go).
	Rumor
	// Push carries the data a peer asked for (ExchangeResponse.Want).
	Push
	// Announce tells a peer that this member left; its answer is not
	// merged.
	Announce
	// Probe asks a peer, or the member itself, whether it has news of a
	// suspected member (Send.About; see suspect.go). The shell sends it
	// with the probe timeout over a connection not kept, and reports the
	// outcome with ProbeAnswered or ProbeFailed.
	Probe
)

// KeepConn reports whether a new connection made for a message of this
// purpose should be kept for later rounds.
func (p Purpose) KeepConn() bool { return p == Exchange }

var purposeNames = [...]string{"", "exchange", "recover", "join", "rumor", "push", "announce", "probe"}

func (p Purpose) String() string {
	if p > 0 && int(p) < len(purposeNames) {
		return purposeNames[p]
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// Send is one message to send.
type Send struct {
	To      string
	Purpose Purpose
	Req     ExchangeRequest
	// About is, for a Probe, the suspected member it asks about.
	About string
}

// Target is a seed name or a dead member's address to contact.
type Target struct {
	Name    string
	Purpose Purpose // Recover or Join
}

// FollowUp is an exchange with To (purpose Recover) to make After from now.
type FollowUp struct {
	To    string
	After time.Duration
}

// EventType says what happened to a member. The root package's EventType
// has the same values.
type EventType int

// The membership changes a State reports.
const (
	Joined EventType = iota + 1
	Updated
	Failed
	Left
	Rejoined
)

// Event is one membership change as this member saw it.
type Event struct {
	Type      EventType
	Addr      string
	Heartbeat int64
	Data      []byte // never modified in place
	Time      time.Time
}

// Level is a log record's level.
type Level int

// The levels of log records.
const (
	Debug Level = iota
	Info
	Warn
)

// Log is a record for the shell's logger: a message and its fields, in
// pairs of key and value.
type Log struct {
	Level  Level
	Msg    string
	Fields []any
}

// flush returns the output gathered so far and starts a new one.
func (s *State) flush() Output {
	out := s.out
	s.out = Output{}
	return out
}

func (s *State) send(to string, p Purpose, req ExchangeRequest) {
	s.out.Send = append(s.out.Send, Send{To: to, Purpose: p, Req: req})
}

// emit records an event about e at now.
func (s *State) emit(typ EventType, e *entry, now time.Time) {
	s.out.Events = append(s.out.Events, Event{Type: typ, Addr: e.addr, Heartbeat: e.heartbeat, Data: e.data, Time: now})
}

// debug records a debug log about peer, if debug records are wanted.
func (s *State) debug(peer, msg string, fields ...any) {
	if s.cfg.Debug {
		s.log(Debug, msg, append([]any{"peer", peer}, fields...)...)
	}
}

// log records a log at level.
func (s *State) log(level Level, msg string, fields ...any) {
	s.out.Logs = append(s.out.Logs, Log{Level: level, Msg: msg, Fields: fields})
}

func errTooMany(n, max int) error {
	return fmt.Errorf("gossip: %d members in one message, limit %d", n, max)
}
