package procs

import (
	"bytes"
	"sync"
)

// Log is a process's output, written by the process and read by a test
// while it runs: a bytes.Buffer safe for concurrent use.
type Log struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

// Write appends p.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns what was written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
