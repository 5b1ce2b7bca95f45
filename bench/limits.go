package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises the soft limit on open files to the hard limit:
// every member holds a listener and connections, both ends of each in this
// process (Go raises it too at start, since Go 1.19; this says so, and
// fails loudly). It returns the limit in force.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("get open file limit: %w", err)
	}
	if l.Cur >= l.Max {
		return l.Cur, nil
	}
	cur := l.Cur
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return cur, fmt.Errorf("raise open file limit from %d to %d: %w", cur, l.Max, err)
	}
	return l.Max, nil
}

// filesPerMember is a generous estimate of the descriptors one member
// holds in the bench, both ends of its connections counted.
const filesPerMember = 16
