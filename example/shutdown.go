package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// shutdown leaves the cluster and closes the member (Gossip.Shutdown), so
// that the others drop it at once rather than after their failure time,
// then stops the HTTP server gracefully, waiting for the requests in
// flight, the DNS server and the change logger; all within timeout. The member and the
// HTTP server are closed whatever it returns: the error says what was cut
// short, a leave that reached too few peers (they see a failure instead,
// after FailureTime) or requests still running at the timeout.
func (a *app) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := a.g.Shutdown(ctx)
	if herr := a.srv.Shutdown(ctx); herr != nil {
		a.srv.Close() // cut the requests still running
		err = errors.Join(err, fmt.Errorf("http: %w", herr))
	}
	err = errors.Join(err, a.dns.close())
	a.cancel()
	a.wg.Wait()
	return err
}

// oneLine renders err on one line, for a log line: go-multierror and
// errors.Join put each error they hold on a line of its own.
func oneLine(err error) string {
	switch e := err.(type) {
	case interface{ WrappedErrors() []error }: // go-multierror
		return joinLine(e.WrappedErrors())
	case interface{ Unwrap() []error }: // errors.Join
		return joinLine(e.Unwrap())
	}
	msg := err.Error()
	if !strings.ContainsAny(msg, "\r\n") {
		return msg
	}
	if inner := errors.Unwrap(err); inner != nil {
		if prefix, ok := strings.CutSuffix(msg, inner.Error()); ok {
			return prefix + oneLine(inner)
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

// joinLine is oneLine of each of errs, separated by "; ".
func joinLine(errs []error) string {
	var parts []string
	for _, e := range errs {
		if e != nil {
			parts = append(parts, oneLine(e))
		}
	}
	return strings.Join(parts, "; ")
}
