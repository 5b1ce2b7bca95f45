package main

import (
	"context"
	"encoding/gob"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

// Service is the application data each member carries: the endpoint it
// advertises. This is the pattern to copy: a plain struct of exported
// fields, registered with gob in every process that reads it (init below),
// set when the member starts and changed with UpdateData while it runs.
// Keep it small: every gossip message carries every member's data, and the
// library refuses encodings over Config.MaxDataSize (1 KiB by default).
type Service struct {
	Name     string            `json:"name"`     // the service's name, e.g. "web"
	Endpoint string            `json:"endpoint"` // where to reach it, e.g. "http://10.0.0.1:8080"
	Tags     map[string]string `json:"tags"`     // free-form labels, e.g. zone=a
}

// gob must know the concrete type behind the interface Member.Data; it is
// registered as "main.Service", the name other processes must use for it.
func init() { gob.Register(Service{}) }

// clone returns a copy of s that shares no map with it.
func (s Service) clone() Service {
	c := s
	c.Tags = make(map[string]string, len(s.Tags))
	for k, v := range s.Tags {
		c.Tags[k] = v
	}
	return c
}

// parseTags reads "k=v,k2=v2" into a map; an empty string gives an empty map.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("tag %q: want key=value", kv)
		}
		tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return tags, nil
}

// formatTags is parseTags' inverse, keys sorted.
func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}

// change is one difference between two views of the cluster.
type change struct {
	kind   string // "joined", "failed", "data", "left" or "rejoined"
	member gossip.Member
	old    interface{} // the previous data, for "data"
}

// diff lists the members that joined, failed and changed data between two
// GetMembers results, in address order.
func diff(prev, cur []gossip.Member) []change {
	old := make(map[string]gossip.Member, len(prev))
	for _, m := range prev {
		old[m.Addr] = m
	}
	var out []change
	for _, m := range cur {
		p, ok := old[m.Addr]
		switch {
		case !ok:
			out = append(out, change{kind: "joined", member: m})
		case !reflect.DeepEqual(p.Data, m.Data):
			out = append(out, change{kind: "data", member: m, old: p.Data})
		}
		delete(old, m.Addr)
	}
	for _, m := range prev {
		if _, gone := old[m.Addr]; gone {
			out = append(out, change{kind: "failed", member: m})
		}
	}
	return out
}

// dataFields describes a member's data as log fields.
func dataFields(prefix string, data interface{}) logrus.Fields {
	switch d := data.(type) {
	case nil:
		return logrus.Fields{}
	case Service:
		return logrus.Fields{prefix + "service": d.Name, prefix + "endpoint": d.Endpoint, prefix + "tags": formatTags(d.Tags)}
	default:
		return logrus.Fields{prefix + "data": fmt.Sprint(d)}
	}
}

// logChanges logs one line per change, with fields.
func logChanges(log logrus.FieldLogger, self string, changes []change) {
	for _, c := range changes {
		l := log.WithFields(dataFields("", c.member.Data)).WithFields(logrus.Fields{"addr": c.member.Addr, "heartbeat": c.member.Heartbeat})
		if c.member.Addr == self {
			l = l.WithField("self", true)
		}
		switch c.kind {
		case "joined":
			l.Info("member joined")
		case "failed":
			l.Warn("member failed")
		case "left":
			l.Info("member left")
		case "rejoined":
			l.Info("member rejoined")
		case "data":
			l.WithFields(dataFields("old_", c.old)).Info("member data changed")
		}
	}
}

// watch logs the cluster's changes from g's events, and hands them to record
// (if not nil), until ctx is done or the member closes: first the members already known, as joined, then one
// line per event. If events were missed (the log could not keep up), it
// logs the difference between what it knew and GetMembers instead.
func watch(ctx context.Context, g *gossip.Gossip, log logrus.FieldLogger, record func([]change)) {
	events := g.Events()
	self := g.Addr()
	logChanges := func(log logrus.FieldLogger, self string, cs []change) {
		logChanges(log, self, cs)
		if record != nil {
			record(cs)
		}
	}
	known := make(map[string]gossip.Member)
	resync := func() {
		prev := make([]gossip.Member, 0, len(known))
		for _, m := range known {
			prev = append(prev, m)
		}
		sort.Slice(prev, func(i, j int) bool { return prev[i].Addr < prev[j].Addr })
		cur := g.GetMembers()
		logChanges(log, self, diff(prev, cur))
		clear(known)
		for _, m := range cur {
			known[m.Addr] = m
		}
	}
	resync()
	for {
		var ev gossip.Event
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			ev = e
		}
		m := ev.Member
		switch ev.Type {
		case gossip.EventResync:
			log.WithField("missed", ev.Missed).Warn("missed membership events; comparing with the member list")
			resync()
		case gossip.EventJoined, gossip.EventRejoined:
			if _, dup := known[m.Addr]; !dup || ev.Type == gossip.EventRejoined {
				logChanges(log, self, []change{{kind: ev.Type.String(), member: m}})
			}
			known[m.Addr] = m
		case gossip.EventUpdated:
			logChanges(log, self, []change{{kind: "data", member: m, old: known[m.Addr].Data}})
			known[m.Addr] = m
		case gossip.EventFailed, gossip.EventLeft:
			logChanges(log, self, []change{{kind: ev.Type.String(), member: m}})
			delete(known, m.Addr)
		}
	}
}

// describe is a member's data in a few words, for the page.
func describe(data interface{}) string {
	switch d := data.(type) {
	case nil:
		return ""
	case Service:
		var parts []string
		for _, s := range []string{d.Name, d.Endpoint, formatTags(d.Tags)} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(d)
	}
}

// dataChange says what changed between two values of a member's data:
// for a Service, each field and tag that changed, as "tags.zone: a → b";
// otherwise the old and new values.
func dataChange(old, cur interface{}) string {
	o, ok1 := old.(Service)
	n, ok2 := cur.(Service)
	if !ok1 || !ok2 {
		return fmt.Sprintf("%v → %v", describe(old), describe(cur))
	}
	var parts []string
	field := func(name, a, b string) {
		switch {
		case a == b:
		case a == "":
			parts = append(parts, fmt.Sprintf("%s: +%q", name, b))
		case b == "":
			parts = append(parts, fmt.Sprintf("%s: -%q", name, a))
		default:
			parts = append(parts, fmt.Sprintf("%s: %q → %q", name, a, b))
		}
	}
	field("name", o.Name, n.Name)
	field("endpoint", o.Endpoint, n.Endpoint)
	keys := make(map[string]bool)
	for k := range o.Tags {
		keys[k] = true
	}
	for k := range n.Tags {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		a, inOld := o.Tags[k]
		b, inNew := n.Tags[k]
		switch {
		case !inOld:
			parts = append(parts, fmt.Sprintf("tags.%s: +%q", k, b))
		case !inNew:
			parts = append(parts, fmt.Sprintf("tags.%s: -%q", k, a))
		case a != b:
			parts = append(parts, fmt.Sprintf("tags.%s: %q → %q", k, a, b))
		}
	}
	if len(parts) == 0 {
		return "no visible change"
	}
	return strings.Join(parts, "; ")
}
