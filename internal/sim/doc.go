// Package sim runs the gossip protocol's state machine (internal/protocol)
// for many members over an in-memory network (Network), in virtual time:
// no sockets, no goroutines, no sleeps, and the same run for the same seed.
// What it measures is the code the members run; only the shell around the
// state machine is played here, as the root package plays it (exchange.go):
//
//	every round (a timer per member):
//		out := s.Tick(now, pool.held())                // heartbeat, failure rules, a partner
//	carry out an Output:
//		Events                 -> Cluster.OnEvent
//		Rumors                 -> s.Spread(now, held), paced as the shell paces it
//		Send                   -> a call over the Network, bounded per member as the shell bounds it:
//			callee: resp, out, err := s.HandleRequest(req, now)
//			caller: out := s.HandleResponse(to, purpose, resp, now)   (not for Announce),
//			        then the Push sends of out over the same call's slot;
//			        a call refused (a crashed callee): out := s.Refused(to, since, now)
//			Probe: a call within Config.ProbeTimeout, bounded apart, then
//			        out := s.ProbeAnswered(to, about, resp, now) or s.ProbeFailed(to, about, now)
//		Contacts               -> s.Request(name), a call with the Target's purpose, then s.Contacted
//		FollowUps              -> after f.After, s.Request(f.To) and a call (Recover)
//
// The simulated shell keeps what the root package keeps beside the state:
// each member's pool of held connections (pool.go) and rumor pacer. Faults
// are the Network's: loss, delay, partitions, paused and crashed members
// (a crashed process, whose calls are refused, or a crashed host, whose
// calls time out). The simulated shell does not model the dial a member
// makes when a peer ends a held connection; the call of a round or a rumor
// finds the crashed process instead.
//
// Run measures the spread of a heartbeat and of a data change and the
// detection of a crash (SimResult), of a process or with RunConfig.HostDown
// of its host; the tests and the flags of sim_test.go
// run it over a grid of sizes and loss rates.
package sim
