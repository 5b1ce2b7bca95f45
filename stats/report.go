package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what a collect round shows.
type report struct {
	Time      time.Time
	Observers []observation // every address queried
	Answered  int           // observers that answered
	Members   []row         // every member seen alive by any observer, by address
	SeenByAll int
	Disagree  []row         // seen alive by some observers but not all
	NoAnswer  []observation // queried and did not answer
	Lag       spread        // of the members' Lag
}

// row is one member as the answering observers see it.
type row struct {
	Addr      string
	Heartbeat int64  // the highest any observer reports
	Type      string // the data's registered type name, if any
	Data      any    // from the observer with the highest heartbeat
	SeenBy    int    // observers that list it alive
	Lag       int64  // highest minus lowest heartbeat across those observers
}

// spread summarises the heartbeat lags of the members.
type spread struct {
	Min, Median, Max int64
}

// buildReport compares the observations.
func buildReport(obs []observation, now time.Time) report {
	r := report{Time: now, Observers: obs}
	type acc struct {
		row
		min int64
	}
	seen := make(map[string]*acc)
	for _, o := range obs {
		if o.Err != nil {
			r.NoAnswer = append(r.NoAnswer, o)
			continue
		}
		r.Answered++
		for _, m := range o.Members {
			a := seen[m.Addr]
			if a == nil {
				a = &acc{row: row{Addr: m.Addr, Heartbeat: m.Heartbeat, Data: m.Data}, min: m.Heartbeat}
				seen[m.Addr] = a
			}
			a.SeenBy++
			if m.Heartbeat > a.Heartbeat {
				a.Heartbeat, a.Data = m.Heartbeat, m.Data
			}
			a.min = min(a.min, m.Heartbeat)
		}
	}
	var lags []int64
	for _, a := range seen {
		a.Lag = a.Heartbeat - a.min
		a.Type, _ = unwrap(a.Data)
		r.Members = append(r.Members, a.row)
		lags = append(lags, a.Lag)
	}
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Addr < r.Members[j].Addr })
	for _, m := range r.Members {
		if m.SeenBy == r.Answered {
			r.SeenByAll++
		} else {
			r.Disagree = append(r.Disagree, m)
		}
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		r.Lag = spread{Min: lags[0], Median: lags[len(lags)/2], Max: lags[len(lags)-1]}
	}
	return r
}

// writeTable prints the report for people: a table of members, then the
// summary.
func writeTable(w io.Writer, r report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tHEARTBEAT\tSEEN BY\tLAG\tTYPE\tDATA")
	for _, m := range r.Members {
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%d\t%s\t%s\n", m.Addr, m.Heartbeat, m.SeenBy, r.Answered, m.Lag, dash(m.Type), dataText(m.Data))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "queried:\t%d\t(%d answered)\n", len(r.Observers), r.Answered)
	fmt.Fprintf(tw, "members seen:\t%d\n", len(r.Members))
	fmt.Fprintf(tw, "seen by all:\t%d\n", r.SeenByAll)
	fmt.Fprintf(tw, "disagreement:\t%d%s\n", len(r.Disagree), cell(disagreeing(r)))
	fmt.Fprintf(tw, "no answer:\t%d%s\n", len(r.NoAnswer), cell(silent(r.NoAnswer)))
	fmt.Fprintf(tw, "heartbeat lag:\t%d\t(min %d, median %d, max %d rounds between observers)\n", r.Lag.Max, r.Lag.Min, r.Lag.Median, r.Lag.Max)
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeCounters(w, r.Observers)
}

// writeCounters prints each answering member's own counters (Gossip.Stats);
// a member that does not serve them shows n/a.
func writeCounters(w io.Writer, obs []observation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "OBSERVER\tALIVE\tFAILED\tLEFT\tFAILURE TIME\tTIMEOUT\tUNANSWERED\tROUNDS\tSKIPPED\tRPCS OUT/IN\tBYTES OUT/IN\tRPC ERRORS (TIMEOUTS)\tMERGE MEAN")
	for _, o := range obs {
		switch c := o.Stats; {
		case o.Err != nil:
		case c == nil:
			fmt.Fprintf(tw, "%s\tn/a (no Gossip.Stats: an older member)\n", o.Addr)
		default:
			var mean time.Duration
			if c.Merges > 0 {
				mean = c.MergeTime / time.Duration(c.Merges)
			}
			timeout := c.Timeout
			if timeout == 0 { // a member from before local health
				timeout = c.FailureTime
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%v\t%.0f%%\t%d\t%d\t%d/%d\t%d/%d\t%d (%d)\t%v\n", o.Addr, c.Alive, c.Failed, c.Left,
				c.FailureTime, timeout.Round(time.Millisecond), 100*c.Unanswered, c.Rounds, c.ExchangesSkipped,
				c.MessagesSent, c.MessagesReceived, c.BytesSent, c.BytesReceived,
				c.RPCErrors, c.RPCTimeouts, mean.Round(time.Microsecond))
		}
	}
	return tw.Flush()
}

// cell is a further table cell holding s, or nothing if s is empty.
func cell(s string) string {
	if s == "" {
		return ""
	}
	return "\t" + s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dataText(v any) string {
	if v == nil {
		return "-"
	}
	return format(v)
}

func disagreeing(r report) string {
	var parts []string
	for _, m := range r.Disagree {
		parts = append(parts, fmt.Sprintf("%s (seen by %d/%d)", m.Addr, m.SeenBy, r.Answered))
	}
	return strings.Join(parts, ", ")
}

func silent(obs []observation) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, o.Addr)
	}
	return strings.Join(parts, ", ")
}

// The JSON form of a report.
type (
	jsonReport struct {
		Time      time.Time      `json:"time"`
		Members   []jsonMember   `json:"members"`
		Observers []jsonObserver `json:"observers"`
		Summary   jsonSummary    `json:"summary"`
	}
	jsonMember struct {
		Addr      string `json:"addr"`
		Heartbeat int64  `json:"heartbeat"`
		SeenBy    int    `json:"seen_by"`
		Observers int    `json:"observers"`
		Lag       int64  `json:"lag"`
		Type      string `json:"type,omitempty"`
		Data      any    `json:"data"`
		DataText  string `json:"data_text,omitempty"`
	}
	jsonObserver struct {
		Addr    string    `json:"addr"`
		Members int       `json:"members"`
		Error   string    `json:"error,omitempty"`
		Seconds float64   `json:"seconds"`
		Stats   *counters `json:"stats,omitempty"`
	}
	jsonSummary struct {
		Queried      int      `json:"queried"`
		Answered     int      `json:"answered"`
		MembersSeen  int      `json:"members_seen"`
		SeenByAll    int      `json:"seen_by_all"`
		Disagreement []string `json:"disagreement"`
		NoAnswer     []string `json:"no_answer"`
		Lag          spread   `json:"heartbeat_lag"`
	}
)

func (s spread) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int64{"min": s.Min, "median": s.Median, "max": s.Max})
}

// writeJSON prints the report for machines, as one JSON object.
func writeJSON(w io.Writer, r report) error {
	out := jsonReport{
		Time:      r.Time,
		Members:   []jsonMember{},
		Observers: []jsonObserver{},
		Summary: jsonSummary{
			Queried: len(r.Observers), Answered: r.Answered, MembersSeen: len(r.Members),
			SeenByAll: r.SeenByAll, Disagreement: []string{}, NoAnswer: []string{}, Lag: r.Lag,
		},
	}
	for _, m := range r.Members {
		jm := jsonMember{Addr: m.Addr, Heartbeat: m.Heartbeat, SeenBy: m.SeenBy, Observers: r.Answered, Lag: m.Lag, Type: m.Type, Data: toJSON(m.Data)}
		if m.Data != nil {
			jm.DataText = format(m.Data)
		}
		out.Members = append(out.Members, jm)
	}
	for _, o := range r.Observers {
		jo := jsonObserver{Addr: o.Addr, Members: len(o.Members), Seconds: o.Took.Seconds(), Stats: o.Stats}
		if o.Err != nil {
			jo.Error = o.Err.Error()
		}
		out.Observers = append(out.Observers, jo)
	}
	for _, m := range r.Disagree {
		out.Summary.Disagreement = append(out.Summary.Disagreement, m.Addr)
	}
	for _, o := range r.NoAnswer {
		out.Summary.NoAnswer = append(out.Summary.NoAnswer, o.Addr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
