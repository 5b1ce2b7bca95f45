package gossip

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

type grepHook struct {
	mu    sync.Mutex
	start time.Time
}

func (h *grepHook) Levels() []logrus.Level { return logrus.AllLevels }
func (h *grepHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, "suspect") || strings.Contains(e.Message, "silent") || strings.Contains(e.Message, "probe") || strings.Contains(e.Message, "paused") {
		h.mu.Lock()
		fmt.Fprintf(os.Stderr, "%6.2f %s %v\n", time.Since(h.start).Seconds(), e.Message, e.Data)
		h.mu.Unlock()
	}
	return nil
}

func TestTmpReal(t *testing.T) {
	const n = 32
	h := &grepHook{start: time.Now()}
	gs := startCluster(t, n, func(i int, c *Config) {
		l := logrus.New()
		l.SetOutput(io_discard{})
		l.SetLevel(logrus.DebugLevel)
		l.AddHook(h)
		c.Logger = l
		c.GossipInterval = time.Second
		c.RPCTimeout = 5 * time.Second
	})
	all := addrsOf(gs...)
	requireView(t, gs, all, 60*time.Second, "converge")

	h.mu.Lock()
	h.start = time.Now()
	fmt.Fprintln(os.Stderr, "CLOSE", gs[n-1].Addr())
	h.mu.Unlock()
	gs[n-1].Close()
	requireView(t, gs[:n-1], addrsOf(gs[:n-1]...), 60*time.Second, "drop")
	fmt.Fprintln(os.Stderr, "dropped after", time.Since(h.start))
}

type io_discard struct{}

func (io_discard) Write(p []byte) (int, error) { return len(p), nil }
