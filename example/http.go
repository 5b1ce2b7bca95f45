package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

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
//	GET /events           the live view as server-sent events (live.go)
//	GET /                 the live page (page.go)
//
// Every error is JSON, {"error": "..."}: 404 for an unknown path, 405 with
// an Allow header for a method a path does not take, 413 for a body over
// the limit. Its methods are safe for concurrent use; run must be running
// for the page to show the members.
type api struct {
	g    *gossip.Gossip
	log  logrus.FieldLogger
	live *live

	mu   sync.Mutex // protects data, and orders its updates
	data Service    // this member's data, as last set
}

func newAPI(g *gossip.Gossip, data Service, log logrus.FieldLogger) *api {
	return &api{g: g, log: log, data: data.clone(), live: newLive(g, log)}
}

// run logs the member's events and feeds them to the live view, and samples
// heartbeats for it, until ctx is done or the member closes.
func (a *api) run(ctx context.Context, log logrus.FieldLogger) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.live.sample(ctx)
	}()
	watch(ctx, a.g, log, a.live.record)
	wg.Wait()
}

// route is one method and path of the API.
type route struct {
	method, path string
	h            http.Handler
}

func (a *api) handler() http.Handler {
	routes := []route{
		{"GET", "/members", http.HandlerFunc(a.members)},
		{"GET", "/services/{name}", http.HandlerFunc(a.service)},
		{"PUT", "/data", http.HandlerFunc(a.putData)},
		{"GET", "/healthz", http.HandlerFunc(a.healthz)},
		{"GET", "/metrics", metricsHandler(a.g)},
		{"GET", "/events", http.HandlerFunc(a.live.serveEvents)},
		{"GET", "/{$}", http.HandlerFunc(a.index)},
	}
	mux := http.NewServeMux()
	allowed := make(map[string][]string)
	var paths []string
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, rt.h)
		if allowed[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet { // a GET pattern serves HEAD too
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	// The same paths without a method catch the other methods, so that
	// the 405 is JSON like every other error.
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such path %s", r.URL.Path))
	})
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
		status := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("body larger than %d bytes", tooLarge.Limit)
		}
		writeError(w, status, fmt.Errorf("bad body: %w", err))
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
