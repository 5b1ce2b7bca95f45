// Package procs runs the example command as real member processes, for
// tests and measurements that kill, stop and restart members.
package procs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Build compiles the example command into dir and returns the binary's path.
// It runs the go command found in PATH, from the module's directory modDir.
func Build(ctx context.Context, modDir, dir string) (string, error) {
	bin := filepath.Join(dir, "example")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./example")
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./example: %w\n%s", err, out)
	}
	return bin, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when it returns; another program may take one before it is used.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// Member is how to run one member process.
type Member struct {
	Bin      string        // the example binary
	Addr     string        // gossip host:port
	HTTP     string        // HTTP API host:port
	Join     string        // seed, or empty
	Endpoint string        // the service endpoint it advertises
	Interval time.Duration // gossip interval
	Log      io.Writer     // its stderr; nil discards it
}

// Proc is a running member process.
type Proc struct {
	M    Member
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
}

// Start starts the member process.
func Start(m Member) (*Proc, error) {
	args := []string{"-addr", m.Addr, "-http", m.HTTP, "-endpoint", m.Endpoint, "-interval", m.Interval.String()}
	if m.Join != "" {
		args = append(args, "-join", m.Join)
	}
	cmd := exec.Command(m.Bin, args...)
	cmd.Stdout, cmd.Stderr = m.Log, m.Log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{M: m, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the process with SIGKILL and waits for it to end.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// View is a member's view as its HTTP API reports it: the endpoint of every
// live member, by address.
type View map[string]string

// Addrs returns the view's addresses, sorted.
func (v View) Addrs() []string {
	out := make([]string, 0, len(v))
	for a := range v {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

var client = &http.Client{Timeout: 2 * time.Second}

// Members reads the view of the member whose HTTP API is at httpAddr.
func Members(ctx context.Context, httpAddr string) (View, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/members", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /members: %s", resp.Status)
	}
	var ms []struct {
		Addr string `json:"addr"`
		Data struct {
			Endpoint string `json:"endpoint"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("GET /members: %w", err)
	}
	v := make(View, len(ms))
	for _, m := range ms {
		v[m.Addr] = m.Data.Endpoint
	}
	return v, nil
}
