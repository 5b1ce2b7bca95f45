// Command stats reads the members of a running gossip cluster and prints who
// sees whom.
//
//	stats [flags] host:port [host:port …]
//
// It calls Gossip.GetMembers on each address given (with -all, on every
// member those answers name, too) and prints each member with its
// heartbeat, its data, and how many of the answering members see it alive,
// then a summary: members seen, seen by all, disagreement, members that did
// not answer, and the heartbeat lag between observers.
//
// stats does not know the application's data types: it decodes the gob
// answers generically (see gobdec.go) and shows structs, maps, slices and
// basic values as fmt's %+v would, and anything else as its type and size.
//
// For a cluster whose members use mutual TLS (gossip.Config.TLS), give it a
// certificate the cluster's CA signed with -tls-cert, -tls-key and -tls-ca,
// or their environment twins GOSSIP_TLS_CERT, GOSSIP_TLS_KEY and
// GOSSIP_TLS_CA, which a member's container may already set. Without them,
// such members close the connection at once.
//
// An address where something else answers, an HTTP server for one, gives
// "not a gossip member"; one where nothing answers within -timeout gives
// "no answer within". If no address answered, stats prints only these
// errors (with -json, the object too).
//
// It exits 1 if no address answered, 2 on a usage error, and 0 otherwise.
// Run through go run, the exit status is go run's own: it reports the
// command's status ("exit status 2") and exits 1.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	addrs   []string
	opts    options
	json    bool
	watch   time.Duration
	noClear bool
}

// envFlags are the flags that have an environment variable twin, as in the
// example's members: the TLS files, which a member's container may set.
var envFlags = map[string]string{
	"tls-cert":        "GOSSIP_TLS_CERT",
	"tls-key":         "GOSSIP_TLS_KEY",
	"tls-ca":          "GOSSIP_TLS_CA",
	"tls-server-name": "GOSSIP_TLS_SERVER_NAME",
}

// parseArgs reads the flags in args, and the environment twins of a few
// through getenv; a flag on the command line wins. Usage goes to stderr.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	var tf tlsFlags
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.opts.timeout, "timeout", 2*time.Second, "give up on an address after this long: dial, TLS handshake and call")
	fs.BoolVar(&c.opts.all, "all", false, "also query every member the answers name")
	fs.IntVar(&c.opts.parallel, "parallel", 16, "query at most this many addresses at once")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&c.watch, "watch", 0, "refresh every `interval` (e.g. 2s) until interrupted; 0 prints once")
	fs.BoolVar(&c.noClear, "no-clear", false, "with -watch, do not clear the screen between refreshes")
	fs.StringVar(&tf.cert, "tls-cert", "", "PEM `file` of a certificate the cluster's CA signed, for members that use TLS; needs -tls-key and -tls-ca (env GOSSIP_TLS_CERT, default none: plain TCP)")
	fs.StringVar(&tf.key, "tls-key", "", "PEM `file` of the private key of -tls-cert (env GOSSIP_TLS_KEY, default none)")
	fs.StringVar(&tf.ca, "tls-ca", "", "PEM `file` of the cluster's CA, which must have signed the members' certificates (env GOSSIP_TLS_CA, default none)")
	fs.StringVar(&tf.serverName, "tls-server-name", "", "check that member certificates name this `host`, as well as the CA's signature (env GOSSIP_TLS_SERVER_NAME, default none: the signature only, as members do)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: stats [flags] host:port [host:port …]\n\n"+
			"Reads members of a gossip cluster with Gossip.GetMembers and prints who sees whom.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	for name, env := range envFlags {
		if v := getenv(env); v != "" {
			fs.Lookup(name).Value.Set(v) // a string flag takes any value
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, errPrinted{err} // the flag package printed it, with the usage
	}
	c.addrs = fs.Args()
	switch {
	case len(c.addrs) == 0:
		fs.Usage()
		return c, fmt.Errorf("stats: no address given")
	case c.opts.timeout <= 0:
		return c, fmt.Errorf("stats: -timeout must be positive")
	case c.opts.parallel < 1:
		return c, fmt.Errorf("stats: -parallel must be at least 1")
	case c.watch < 0:
		return c, fmt.Errorf("stats: -watch must not be negative")
	}
	var err error
	c.opts.tls, err = tf.clientConfig()
	return c, err
}

// errPrinted is a usage error already printed.
type errPrinted struct{ error }

func (e errPrinted) Unwrap() error { return e.error }

// run is the command, returning its exit status: 0 if an address answered,
// 1 if none did, 2 on a usage error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.As(err, new(errPrinted)) {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	if c.watch > 0 {
		return watch(ctx, c, stdout)
	}
	r := buildReport(collect(ctx, c.addrs, c.opts), time.Now())
	for _, o := range r.NoAnswer {
		fmt.Fprintf(stderr, "stats: %s: %v\n", o.Addr, o.Err)
	}
	if r.Answered > 0 || c.json {
		// A table with no observer would hold nothing but zeros; the
		// JSON object still lists the observers with their errors.
		if err := write(stdout, c, r); err != nil {
			fmt.Fprintf(stderr, "stats: %v\n", err)
			return 1
		}
	}
	if r.Answered == 0 {
		fmt.Fprintf(stderr, "stats: no address answered\n")
		return 1
	}
	return 0
}

func write(w io.Writer, c config, r report) error {
	if c.json {
		return writeJSON(w, r)
	}
	return writeTable(w, r)
}

// watch prints a report every c.watch until ctx is done, redrawing the
// screen in place.
func watch(ctx context.Context, c config, stdout io.Writer) int {
	t := time.NewTicker(c.watch)
	defer t.Stop()
	for {
		r := buildReport(collect(ctx, c.addrs, c.opts), time.Now())
		if ctx.Err() != nil {
			return 0
		}
		var buf bytes.Buffer
		if !c.noClear && !c.json {
			buf.WriteString("\x1b[H\x1b[2J") // cursor home, clear screen
		}
		if r.Answered > 0 || c.json {
			write(&buf, c, r)
		}
		if !c.json {
			for _, o := range r.NoAnswer {
				fmt.Fprintf(&buf, "%s: %v\n", o.Addr, o.Err)
			}
			fmt.Fprintf(&buf, "\n%s, every %v; interrupt to stop\n", r.Time.Format("15:04:05"), c.watch)
		}
		stdout.Write(buf.Bytes())
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}
