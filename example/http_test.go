package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorsAreJSON: every error the API answers is JSON, with the status
// that says what went wrong.
func TestErrorsAreJSON(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web", Endpoint: "http://a:1"})
	base := nodes[0].srv.URL
	cases := []struct {
		name, method, path, body string
		want                     int
		allow                    string
		says                     string
	}{
		{"body over the limit", http.MethodPut, "/data", `{"endpoint":"` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, "", "larger than 65536 bytes"},
		{"GET /data", http.MethodGet, "/data", "", http.StatusMethodNotAllowed, "PUT", "method GET not allowed on /data"},
		{"POST /data", http.MethodPost, "/data", "{}", http.StatusMethodNotAllowed, "PUT", "allowed: PUT"},
		{"DELETE /members", http.MethodDelete, "/members", "", http.StatusMethodNotAllowed, "GET, HEAD", "not allowed"},
		{"PUT /services/web", http.MethodPut, "/services/web", "", http.StatusMethodNotAllowed, "GET, HEAD", "not allowed"},
		{"POST /", http.MethodPost, "/", "", http.StatusMethodNotAllowed, "GET, HEAD", "not allowed"},
		{"unknown path", http.MethodGet, "/nothing", "", http.StatusNotFound, "", "no such path /nothing"},
		{"service without a name", http.MethodGet, "/services/", "", http.StatusNotFound, "", "no such path"},
		{"not JSON", http.MethodPut, "/data", "{", http.StatusBadRequest, "", "bad body"},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		require.NoError(t, err, c.name)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, c.name)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, resp.StatusCode, "%s: %s", c.name, b)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), c.name)
		assert.Equal(t, c.allow, resp.Header.Get("Allow"), "%s: Allow", c.name)
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal(b, &e), "%s: %s", c.name, b)
		assert.Contains(t, e.Error, c.says, c.name)
	}

	// The routes themselves still answer, HEAD included.
	for _, path := range []string{"/members", "/services/web", "/healthz", "/metrics", "/"} {
		resp, err := http.Head(base + path)
		require.NoError(t, err, path)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "HEAD %s", path)
	}
}
