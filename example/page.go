package main

import (
	"fmt"
	"html/template"
	"net/http"
)

// The live page at /: the live view (live.go) rendered on the server, so
// that it reads without JavaScript, then kept up to date in the browser from
// GET /events, without reloading.

// index serves the live page.
func (a *api) index(w http.ResponseWriter, r *http.Request) {
	v := a.live.snapshot()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.Execute(w, v); err != nil {
		a.log.WithError(err).Debug("writing the page")
	}
}

// seconds shows a duration in milliseconds as seconds ago.
func seconds(ms int64) string {
	if ms < 10000 {
		return fmt.Sprintf("%.1f s ago", float64(ms)/1000)
	}
	return fmt.Sprintf("%d s ago", ms/1000)
}

var page = template.Must(template.New("index").Funcs(template.FuncMap{"seconds": seconds}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gossip: {{len .Members}} live members</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.5em; font-size: 1.15em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.25em 0.9em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.self td:first-child { font-weight: bold; }
tr.late td.num { color: #b35c00; }
tr.fresh { animation: fresh 2s; }
@keyframes fresh { from { background: #fff3b0; } to { background: none; } }
.gone { display: flex; gap: 3em; flex-wrap: wrap; }
#failed th { background: #fbe3e3; }
#left th { background: #e8eef7; }
.kind-failed { color: #b00020; font-weight: 600; }
.kind-left { color: #345; }
.kind-joined, .kind-rejoined { color: #1b6e20; }
#status { color: #666; }
#status.live::before { content: "● "; color: #1b6e20; }
#status.down::before { content: "● "; color: #b00020; }
.kind-data { color: #1a4f9c; }
</style>
</head>
<body>
<h1><span id="count">{{len .Members}}</span> live members</h1>
<p>Seen from <b>{{.Self}}</b>. <span id="status">As of {{.Time}}; live updates need JavaScript.</span></p>
<table id="members">
<thead><tr><th>Address</th><th>Service</th><th>Endpoint</th><th>Tags</th><th>Last heard</th><th>Started</th></tr></thead>
<tbody>
{{range .Members}}<tr data-addr="{{.Addr}}"{{if .Self}} class="self"{{end}}><td>{{.Addr}}{{if .Self}} (this member){{end}}</td><td>{{.Service}}</td><td>{{if .Link}}<a href="{{.Link}}">{{.Endpoint}}</a>{{else}}{{.Endpoint}}{{end}}</td><td>{{.Tags}}</td><td class="num">{{seconds .HeardMs}}</td><td>{{.Started}}</td></tr>
{{end}}</tbody>
</table>
<div class="gone">
<section>
<h2>Failed</h2>
<table id="failed">
<thead><tr><th>Address</th><th>Declared dead at</th><th>Last heard at</th></tr></thead>
<tbody>
{{range .Failed}}<tr data-addr="{{.Addr}}"><td>{{.Addr}}</td><td>{{.Time}}</td><td>{{.LastHeard}}</td></tr>
{{end}}</tbody>
</table>
</section>
<section>
<h2>Left</h2>
<table id="left">
<thead><tr><th>Address</th><th>Left at</th><th>Last heard at</th></tr></thead>
<tbody>
{{range .Left}}<tr data-addr="{{.Addr}}"><td>{{.Addr}}</td><td>{{.Time}}</td><td>{{.LastHeard}}</td></tr>
{{end}}</tbody>
</table>
</section>
</div>
<h2>Recent changes</h2>
<table id="recent">
<thead><tr><th>Time</th><th>Change</th><th>Address</th><th>What</th></tr></thead>
<tbody>
{{range .Recent}}<tr><td>{{.Time}}</td><td class="kind-{{.Kind}}">{{.Kind}}</td><td>{{.Addr}}</td><td>{{.Detail}}</td></tr>
{{end}}</tbody>
</table>
<script>
"use strict";
(function () {
  let members = {}, failed = [], left = [], recent = [], heardAt = 0, failureMs = 0;
  const $ = (id) => document.getElementById(id);
  const status = $("status");

  function secondsAgo(ms) {
    return ms < 10000 ? (ms / 1000).toFixed(1) + " s ago" : Math.floor(ms / 1000) + " s ago";
  }
  function cell(tr, text, cls) {
    const td = tr.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function fill(tbody, rows, make) {
    const body = document.createElement("tbody");
    for (const r of rows) body.appendChild(make(r));
    tbody.replaceWith(body);
  }
  function renderMembers() {
    const list = Object.values(members).sort((a, b) => a.addr < b.addr ? -1 : 1);
    $("count").textContent = list.length;
    document.title = "gossip: " + list.length + " live members";
    fill($("members").tBodies[0], list, (m) => {
      const tr = document.createElement("tr");
      tr.dataset.addr = m.addr;
      if (m.self) tr.classList.add("self");
      if (m.fresh) { tr.classList.add("fresh"); m.fresh = false; }
      cell(tr, m.addr + (m.self ? " (this member)" : ""));
      cell(tr, m.service);
      const ep = tr.insertCell();
      if (m.link) {
        const a = document.createElement("a");
        a.href = m.link;
        a.textContent = m.endpoint;
        ep.appendChild(a);
      } else {
        ep.textContent = m.endpoint;
      }
      cell(tr, m.tags);
      cell(tr, "", "num heard");
      cell(tr, m.started);
      return tr;
    });
    renderHeard();
  }
  function renderHeard() {
    const extra = heardAt ? performance.now() - heardAt : 0;
    for (const tr of $("members").tBodies[0].rows) {
      const m = members[tr.dataset.addr];
      const ms = m.heard_ms + extra;
      tr.querySelector(".heard").textContent = secondsAgo(ms);
      tr.classList.toggle("late", failureMs > 0 && ms > failureMs / 2);
    }
  }
  function renderGone() {
    for (const [id, list] of [["failed", failed], ["left", left]]) {
      fill($(id).tBodies[0], list, (g) => {
        const tr = document.createElement("tr");
        tr.dataset.addr = g.addr;
        cell(tr, g.addr);
        cell(tr, g.time);
        cell(tr, g.last_heard);
        return tr;
      });
    }
  }
  function renderRecent() {
    fill($("recent").tBodies[0], recent, (c) => {
      const tr = document.createElement("tr");
      cell(tr, c.time);
      cell(tr, c.kind, "kind-" + c.kind);
      cell(tr, c.addr);
      cell(tr, c.detail);
      return tr;
    });
  }
  function without(list, addr) { return list.filter((g) => g.addr !== addr); }

  const es = new EventSource("events");
  es.onopen = () => { status.className = "live"; status.textContent = "Live."; };
  es.onerror = () => {
    status.className = "down";
    status.textContent = es.readyState === EventSource.CLOSED ? "Disconnected: the member is gone." : "Reconnecting…";
  };
  es.addEventListener("view", (e) => {
    const v = JSON.parse(e.data);
    members = {};
    for (const m of v.members) members[m.addr] = m;
    failed = v.failed; left = v.left; recent = v.recent;
    failureMs = v.failure_ms; heardAt = performance.now();
    status.className = "live"; status.textContent = "Live, as of " + v.time + ".";
    renderMembers(); renderGone(); renderRecent();
  });
  es.addEventListener("change", (e) => {
    const c = JSON.parse(e.data);
    failed = without(failed, c.change.addr);
    left = without(left, c.change.addr);
    if (c.member) {
      c.member.fresh = true;
      c.member.heard_ms -= heardAt ? performance.now() - heardAt : 0;
      members[c.change.addr] = c.member;
    }
    if (c.gone) {
      delete members[c.change.addr];
      (c.gone.kind === "failed" ? failed : left).unshift(c.gone);
    }
    recent.unshift(c.change);
    recent.length = Math.min(recent.length, {{.MaxRecent}});
    renderMembers(); renderGone(); renderRecent();
  });
  es.addEventListener("heard", (e) => {
    const h = JSON.parse(e.data);
    for (const [addr, ms] of Object.entries(h.heard_ms)) if (members[addr]) members[addr].heard_ms = ms;
    failureMs = h.failure_ms; heardAt = performance.now();
    status.className = "live"; status.textContent = "Live, as of " + h.time + ".";
    renderHeard();
  });
  setInterval(renderHeard, 250);
})();
</script>
</body>
</html>
`))
