package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// The live page in a real browser: headless Chromium, driven over the
// DevTools protocol by chromedp.

// browserWait bounds each wait in the browser: Chromium on two busy cores
// is slow to start.
const browserWait = 30 * time.Second

// findChromium returns the path of a Chromium or Chrome binary: $CHROMIUM,
// else the first of the usual names on $PATH.
func findChromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of chromium, chromium-browser, google-chrome, headless-shell on $PATH, and $CHROMIUM unset")
}

// browser starts headless Chromium and returns a context to run chromedp
// actions in, or skips the test where there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := findChromium()
	if err != nil {
		t.Skipf("skipped: no browser (%v); on Debian: apt-get install chromium", err)
	}
	profile, err := os.MkdirTemp("", "gossip-browser-")
	require.NoError(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, as in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(profile),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's helper processes may still write to the profile for
		// a moment after the browser ended: remove it once they stop.
		deadline := time.Now().Add(10 * time.Second)
		for os.RemoveAll(profile) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Start the browser now, so that its start-up is not counted in the
	// first wait.
	require.NoError(t, chromedp.Run(ctx), "starting %s", path)
	return ctx
}

// waitJS waits until the JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(browserWait)
	var ok bool
	var err error
	for time.Now().Before(deadline) {
		if err = chromedp.Run(ctx, chromedp.Evaluate(expr, &ok)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the page, not waiting for an outcome
	}
	require.FailNow(t, "the page never showed it", "%s: %s (last error %v)", what, expr, err)
}

// rows is a JavaScript expression: the addresses listed in a table.
func rows(table string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll("#%s tbody tr")).map(r => r.dataset.addr)`, table)
}

// TestLivePageInBrowser loads the live page of a real member in headless
// Chromium, sees every member, then sees a killed member marked failed and
// gone from the live list, a stopped one listed as left, and a data change
// described, all without the page reloading. With LIVE_PAGE_SCREENSHOT set
// to a file name, it saves a screenshot there.
func TestLivePageInBrowser(t *testing.T) {
	ctx := browser(t)

	const iv = 100 * time.Millisecond
	first, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", tags: "zone=a", interval: iv}, quietLogger())
	require.NoError(t, err)
	t.Cleanup(func() { first.shutdown(time.Second) })
	apps := []*app{first}
	for _, c := range []struct{ service, tags string }{{"web", "zone=b"}, {"api", "zone=a,v=2"}, {"db", "zone=c"}, {"cache", "zone=b"}} {
		a, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: c.service, tags: c.tags, join: first.g.Addr(), interval: iv}, quietLogger())
		require.NoError(t, err)
		t.Cleanup(func() { a.shutdown(time.Second) })
		apps = append(apps, a)
	}
	var addrs []string
	for _, a := range apps {
		addrs = append(addrs, fmt.Sprintf("%q", a.g.Addr()))
	}
	all := "[" + strings.Join(addrs, ",") + "]"

	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate("http://"+first.httpAddr+"/")))
	// A mark that a reload would wipe out.
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(`window.notReloaded = true`, nil)))
	waitJS(t, ctx, `document.getElementById("status").className === "live"`, "following /events")
	waitJS(t, ctx, fmt.Sprintf(`JSON.stringify(%s.sort()) === JSON.stringify(%s.sort())`, rows("members"), all), "every member listed")
	waitJS(t, ctx, `document.getElementById("count").textContent === "5"`, "five live members counted")

	// Killed: no leave, so the others declare it dead after FailureTime.
	killed := apps[3]
	killed.g.Close()
	waitJS(t, ctx, fmt.Sprintf(`!%s.includes(%q) && %s.includes(%q)`, rows("members"), killed.g.Addr(), rows("failed"), killed.g.Addr()),
		"the killed member gone from the live list and listed as failed")
	waitJS(t, ctx, `document.getElementById("count").textContent === "4"`, "four live members counted")

	// Stopped: it leaves, and is listed apart from the failure.
	stopped := apps[4]
	require.NoError(t, stopped.g.Shutdown(context.Background()))
	waitJS(t, ctx, fmt.Sprintf(`!%s.includes(%q) && %s.includes(%q) && !%s.includes(%q)`,
		rows("members"), stopped.g.Addr(), rows("left"), stopped.g.Addr(), rows("failed"), stopped.g.Addr()),
		"the stopped member listed as left, not failed")

	// A data change, described.
	apps[2].api.mu.Lock()
	endpoint := apps[2].api.data.Endpoint
	apps[2].api.mu.Unlock()
	require.NoError(t, apps[2].g.UpdateData(Service{Name: "api", Endpoint: endpoint, Tags: map[string]string{"zone": "a", "v": "3"}}))
	waitJS(t, ctx, `document.querySelector("#recent tbody").textContent.includes('tags.v: "2" → "3"')`, "the data change described")
	waitJS(t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll("#members tbody tr")).some(r => r.dataset.addr === %q && r.textContent.includes("v=3"))`, apps[2].g.Addr()),
		"the live list shows the new tags")
	// Last heard, in seconds, for every live member.
	waitJS(t, ctx, `Array.from(document.querySelectorAll("#members td.heard")).every(td => /^\d+(\.\d)? s ago$/.test(td.textContent))`, "last heard in seconds")
	waitJS(t, ctx, `window.notReloaded === true`, "updated without reloading")

	if out := os.Getenv("LIVE_PAGE_SCREENSHOT"); out != "" {
		var png []byte
		require.NoError(t, chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)))
		require.NoError(t, os.WriteFile(out, png, 0o644))
		t.Logf("screenshot: %s (%d bytes)", out, len(png))
	}
}
