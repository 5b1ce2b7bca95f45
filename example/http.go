package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

// api serves the member's HTTP API:
//
//	GET /members          every live member: address, heartbeat, data (JSON)
//	GET /services/{name}  the live endpoints of one service (JSON)
//	PUT /data             change this member's data (JSON, fields optional)
//	GET /healthz          200 "ok" while the member runs, 503 after
//	GET /metrics          the member's Stats for Prometheus (metrics.go)
//	GET /                 an HTML page of the members, refreshing itself
//
// Its methods are safe for concurrent use.
type api struct {
	g       *gossip.Gossip
	log     logrus.FieldLogger
	refresh time.Duration // of the HTML page

	mu   sync.Mutex // protects data, and orders its updates
	data Service    // this member's data, as last set

	recentMu sync.Mutex
	recent   []pageChange // the last maxRecent changes, newest first
}

// pageChange is one line of the page's recent changes.
type pageChange struct {
	Time, Kind, Addr, Detail string
}

// maxRecent bounds the changes the page lists.
const maxRecent = 20

// record keeps changes, as watch reports them from the member's events, for
// the page.
func (a *api) record(cs []change) {
	now := time.Now().Format("15:04:05.000")
	a.recentMu.Lock()
	defer a.recentMu.Unlock()
	for _, c := range cs {
		p := pageChange{Time: now, Kind: c.kind, Addr: c.member.Addr}
		if s, ok := c.member.Data.(Service); ok {
			p.Detail = s.Name + " " + s.Endpoint
		} else if c.member.Data != nil {
			p.Detail = fmt.Sprint(c.member.Data)
		}
		a.recent = append([]pageChange{p}, a.recent...)
	}
	if len(a.recent) > maxRecent {
		a.recent = a.recent[:maxRecent]
	}
}

func newAPI(g *gossip.Gossip, data Service, log logrus.FieldLogger) *api {
	return &api{g: g, log: log, data: data.clone(), refresh: 2 * time.Second}
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /members", a.members)
	mux.HandleFunc("GET /services/{name}", a.service)
	mux.HandleFunc("PUT /data", a.putData)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", metricsHandler(a.g))
	mux.HandleFunc("GET /{$}", a.index)
	return mux
}

// memberJSON is a member as /members shows it.
type memberJSON struct {
	Addr      string      `json:"addr"`
	Heartbeat int64       `json:"heartbeat"`
	Data      interface{} `json:"data"`
}

// jsonData returns data that encoding/json can render: a Service as is, data
// of a type this process does not know as its type and size, and anything
// json cannot encode as its fmt form.
func jsonData(v interface{}) interface{} {
	switch d := v.(type) {
	case nil, Service:
		return d
	case gossip.RawData:
		return map[string]interface{}{"type": d.Type, "bytes": len(d.Gob)}
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Sprint(v)
	}
	return v
}

func (a *api) members(w http.ResponseWriter, r *http.Request) {
	ms := a.g.GetMembers()
	out := make([]memberJSON, len(ms))
	for i, m := range ms {
		out[i] = memberJSON{Addr: m.Addr, Heartbeat: m.Heartbeat, Data: jsonData(m.Data)}
	}
	writeJSON(w, http.StatusOK, out)
}

// endpointJSON is one live instance of a service.
type endpointJSON struct {
	Addr     string            `json:"addr"`
	Endpoint string            `json:"endpoint"`
	Tags     map[string]string `json:"tags"`
}

// service lists the live endpoints of a service; an unknown service has
// none, which is not an error: it may appear at any time.
func (a *api) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	out := struct {
		Service   string         `json:"service"`
		Endpoints []endpointJSON `json:"endpoints"`
	}{Service: name, Endpoints: []endpointJSON{}}
	for _, m := range a.g.GetMembers() {
		if s, ok := m.Data.(Service); ok && s.Name == name {
			out.Endpoints = append(out.Endpoints, endpointJSON{Addr: m.Addr, Endpoint: s.Endpoint, Tags: s.Tags})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// dataUpdate is the body of PUT /data: the fields given replace this
// member's; tags replace all tags.
type dataUpdate struct {
	Name     *string            `json:"name"`
	Endpoint *string            `json:"endpoint"`
	Tags     *map[string]string `json:"tags"`
}

// maxBody bounds a PUT /data body; the data itself is bounded by the
// library's Config.MaxDataSize.
const maxBody = 64 << 10

func (a *api) putData(w http.ResponseWriter, r *http.Request) {
	var u dataUpdate
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad body: %w", err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.data.clone()
	if u.Name != nil {
		next.Name = *u.Name
	}
	if u.Endpoint != nil {
		next.Endpoint = *u.Endpoint
	}
	if u.Tags != nil {
		next.Tags = *u.Tags
	}
	if err := a.g.UpdateData(next); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, gossip.ErrDataTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, err)
		return
	}
	a.data = next
	a.log.WithFields(dataFields("", next)).Info("data updated by PUT /data")
	writeJSON(w, http.StatusOK, next)
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	select {
	case <-a.g.Done():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "closed")
	default:
		fmt.Fprintln(w, "ok")
	}
}

var page = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>gossip: {{len .Members}} members</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.3em 1em; border-bottom: 1px solid #ddd; }
tr.self { font-weight: bold; }
</style>
</head>
<body>
<h1>{{len .Members}} live members</h1>
<p>Seen from {{.Self}} at {{.Time}}; this page refreshes every {{.Refresh}} s.</p>
<table>
<tr><th>Address</th><th>Heartbeat</th><th>Service</th><th>Endpoint</th><th>Tags</th></tr>
{{range .Members}}<tr{{if .Self}} class="self"{{end}}>
<td>{{.Addr}}</td><td>{{.Heartbeat}}</td>
{{if .Service}}<td>{{.Service.Name}}</td><td><a href="{{.Service.Endpoint}}">{{.Service.Endpoint}}</a></td><td>{{.Tags}}</td>
{{else}}<td colspan="3">{{.Other}}</td>{{end}}
</tr>
{{end}}</table>
<h2>Recent changes</h2>
{{if .Recent}}<table>
<tr><th>Time</th><th>Change</th><th>Address</th><th>Data</th></tr>
{{range .Recent}}<tr><td>{{.Time}}</td><td>{{.Kind}}</td><td>{{.Addr}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p>None yet.</p>{{end}}
</body>
</html>
`))

type pageMember struct {
	Addr      string
	Heartbeat int64
	Self      bool
	Service   *Service
	Tags      string
	Other     string // data that is not a Service
}

func (a *api) index(w http.ResponseWriter, r *http.Request) {
	self := a.g.Addr()
	var rows []pageMember
	for _, m := range a.g.GetMembers() {
		p := pageMember{Addr: m.Addr, Heartbeat: m.Heartbeat, Self: m.Addr == self}
		if s, ok := m.Data.(Service); ok {
			p.Service, p.Tags = &s, formatTags(s.Tags)
		} else if m.Data != nil {
			p.Other = fmt.Sprint(m.Data)
		}
		rows = append(rows, p)
	}
	a.recentMu.Lock()
	recent := append([]pageChange(nil), a.recent...)
	a.recentMu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := page.Execute(w, map[string]interface{}{
		"Recent":  recent,
		"Members": rows,
		"Self":    self,
		"Time":    time.Now().Format("15:04:05"),
		"Refresh": max(1, int(a.refresh.Seconds())),
	})
	if err != nil {
		a.log.WithError(err).Debug("writing the page")
	}
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
