// Command example is a small service-discovery program built on the gossip
// package: each instance is a cluster member that advertises one service
// endpoint, and serves an HTTP API listing the live endpoints of every
// service.
//
//	go run ./example -addr 127.0.0.1:7001 -join 127.0.0.1:7000 \
//	    -http 127.0.0.1:8081 -service web -endpoint http://127.0.0.1:9001
//
// Every flag has an environment variable twin (-addr and GOSSIP_ADDR, …);
// a flag given on the command line wins. Run it with -h for the list.
//
// The member's data is a Service (service.go), set from the flags at start
// and changed while running with PUT /data:
//
//	curl -X PUT -d '{"tags":{"zone":"b"}}' http://127.0.0.1:8081/data
//
// With -dns it answers DNS too, from the same live view (dns.go,
// docs/dns.md): SRV and A records of each service's live instances.
//
//	dig @127.0.0.1 -p 8600 web.service.gossip SRV
//
// With -tls-cert, -tls-key and -tls-ca the member speaks mutual TLS: it
// accepts only peers whose certificate the CA signed, and presents its own
// to the peers it dials. Every member of a cluster must agree. -cluster
// names the cluster, so that members of another one are refused:
//
//	go run ./example -cluster prod -tls-cert m1.pem -tls-key m1.key -tls-ca ca.pem
//
// It logs joins, failures, leaves and data changes from the member's events,
// one line each, and on SIGINT or SIGTERM leaves the cluster (so that the
// others drop it at once), closes the member and drains the HTTP server,
// within 5 s. GET /metrics serves the member's counters for Prometheus.
//
// It exits 0 after a signal once the member is closed, even when the leave
// reached too few peers (one warning line: they see a failure instead), 1
// if it cannot start, and 2 on a usage error.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

func main() {
	log := logrus.New()
	// Times to the millisecond, so that lines of members on one host can
	// be put in order (docker/swarm-test.sh does).
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(2)
	}
	if cfg.debug {
		log.SetLevel(logrus.DebugLevel)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := start(cfg, log)
	if err != nil {
		log.WithError(err).Error("not started")
		os.Exit(1)
	}
	<-ctx.Done()
	stop() // a second signal stops the process at once
	log.Info("shutting down")
	if err := a.shutdown(5 * time.Second); err != nil {
		// The member is closed all the same: a stop on purpose, not a
		// failure of this process, so the exit status stays 0.
		log.WithField("error", oneLine(err)).Warn("shut down, but not cleanly")
	}
}

// config is the command's configuration, from flags and the environment.
type config struct {
	addr      string
	advertise string
	join      string
	http      string
	service   string
	endpoint  string
	tags      string
	interval  time.Duration
	debug     bool
	cluster   string
	tlsCert   string
	tlsKey    string
	tlsCA     string
	dns       string        // DNS address; "" means no DNS (dns.go)
	dnsDomain string        // the DNS zone
	dnsTTL    time.Duration // of DNS records
}

// envName is the environment variable twin of a flag: -rpc-timeout is
// GOSSIP_RPC_TIMEOUT.
func envName(flag string) string {
	return "GOSSIP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseConfig reads the environment through getenv, then the flags in args,
// which override it. Usage goes to out.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7000", "gossip `host:port` to listen on")
	fs.StringVar(&c.advertise, "advertise", "", "gossip `host:port` other members reach this one at, its identity (in a container, its DNS name); empty means the listen address")
	fs.StringVar(&c.join, "join", "", "comma-separated seed `host:port`s to join through; DNS names may resolve to several")
	fs.StringVar(&c.http, "http", "127.0.0.1:8080", "`host:port` of the HTTP API")
	fs.StringVar(&c.service, "service", "web", "`name` of the service this member advertises")
	fs.StringVar(&c.endpoint, "endpoint", "", "`URL` of the service this member advertises; empty means http:// with the advertised host and the HTTP API's port")
	fs.StringVar(&c.tags, "tags", "", "free-form tags of the service, as `k=v,…`")
	fs.DurationVar(&c.interval, "interval", gossip.Tgossip, "gossip `interval`; failures are detected after a few intervals")
	fs.BoolVar(&c.debug, "debug", false, "log at debug level, gossip protocol chatter included")
	fs.StringVar(&c.cluster, "cluster", "", "`name` of the cluster; members with another name are refused. Not a secret: use TLS against hostile peers")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM `file` of this member's certificate, for mutual TLS with -tls-key and -tls-ca; empty (all three) means plain TCP")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM `file` of the private key of -tls-cert")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM `file` of the CA that signs every member's certificate")
	fs.StringVar(&c.dns, "dns", "", "`host:port` to answer DNS on, over UDP and TCP (docs/dns.md); empty means no DNS")
	fs.StringVar(&c.dnsDomain, "dns-domain", defaultDNSDomain, "`domain` the DNS answers for, as its authority")
	fs.DurationVar(&c.dnsTTL, "dns-ttl", 0, "TTL of DNS records, whole seconds; 0 means resolvers do not cache, so a failure is gone from every lookup at once")
	fs.Usage = func() { usage(fs) }

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := lookup(getenv, envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.interval <= 0 {
		return c, fmt.Errorf("-interval must be positive")
	}
	if _, err := parseTags(c.tags); err != nil {
		return c, fmt.Errorf("-tags: %w", err)
	}
	if err := checkTLSFlags(c.tlsCert, c.tlsKey, c.tlsCA); err != nil {
		return c, err
	}
	if _, err := checkDNSConfig(dnsConfig{addr: c.dns, domain: c.dnsDomain, ttl: c.dnsTTL}); err != nil {
		return c, err
	}
	return c, nil
}

// checkTLSFlags requires -tls-cert, -tls-key and -tls-ca together, or none.
func checkTLSFlags(cert, key, ca string) error {
	given := map[string]bool{"-tls-cert": cert != "", "-tls-key": key != "", "-tls-ca": ca != ""}
	var missing []string
	for _, f := range []string{"-tls-cert", "-tls-key", "-tls-ca"} {
		if !given[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 || len(missing) == 3 {
		return nil
	}
	return fmt.Errorf("TLS needs -tls-cert, -tls-key and -tls-ca together (or their GOSSIP_TLS_* twins): %s not given", strings.Join(missing, " and "))
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// usage documents every flag with its environment twin and default.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: example [flags]\n\n"+
		"A gossip member advertising one service endpoint, with an HTTP API.\n"+
		"Each flag may be set by the environment variable named beside it;\n"+
		"the command line wins.\n\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  -%s%s\n", f.Name, arg)
		fmt.Fprintf(w, "    \t%s\n    \t(env %s, default %q)\n", text, envName(f.Name), f.DefValue)
	})
}

// seeds splits the -join list.
func seeds(join string) []string {
	var out []string
	for _, s := range strings.Split(join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// defaultEndpoint is http:// with the advertised host and the HTTP port.
func defaultEndpoint(advertised, httpAddr string) string {
	host, _, _ := net.SplitHostPort(advertised)
	_, port, _ := net.SplitHostPort(httpAddr)
	return "http://" + net.JoinHostPort(host, port)
}

// app is a running member with its HTTP server and change logger.
type app struct {
	g        *gossip.Gossip
	api      *api
	srv      *http.Server
	httpAddr string // where the HTTP API listens
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	dns *dnsServer // the DNS interface; nil without -dns
}

// start starts the member, its HTTP API and the change logger.
func start(cfg config, log *logrus.Logger) (*app, error) {
	tags, err := parseTags(cfg.tags)
	if err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		if tlsConfig, err = gossip.TLSConfigFromFiles(cfg.tlsCert, cfg.tlsKey, cfg.tlsCA); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	data := Service{Name: cfg.service, Endpoint: cfg.endpoint, Tags: tags}
	advertised := cfg.advertise
	if advertised == "" {
		advertised = cfg.addr
	}
	if data.Endpoint == "" {
		data.Endpoint = defaultEndpoint(advertised, ln.Addr().String())
	}
	g, err := gossip.NewWithConfig(gossip.Config{
		Addr:           cfg.addr,
		AdvertiseAddr:  cfg.advertise,
		ClusterName:    cfg.cluster,
		Seeds:          seeds(cfg.join),
		Data:           data,
		GossipInterval: cfg.interval,
		Logger:         log,
		TLS:            tlsConfig,
	})
	if err == nil {
		err = g.Start()
	}
	if err == nil && cfg.endpoint == "" && advertised != g.Addr() {
		// The listen address had no usable host (0.0.0.0, port 0):
		// advertise the one the member picked.
		data.Endpoint = defaultEndpoint(g.Addr(), ln.Addr().String())
		err = g.UpdateData(data)
	}
	var dnsSrv *dnsServer
	if err == nil && cfg.dns != "" {
		dnsSrv, err = startDNS(g.GetMembers, dnsConfig{addr: cfg.dns, domain: cfg.dnsDomain, ttl: cfg.dnsTTL}, log)
	}
	if err != nil {
		ln.Close()
		g.Close()
		return nil, err
	}
	a := &app{g: g, api: newAPI(g, data, log), httpAddr: ln.Addr().String()}
	a.dns = dnsSrv
	a.srv = &http.Server{
		Handler:           a.api.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	a.srv.RegisterOnShutdown(a.api.live.close) // ends the GET /events streams
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("http server stopped")
		}
	}()
	go func() {
		defer a.wg.Done()
		a.api.run(ctx, log.WithField("member", g.Addr()))
	}()
	log.WithFields(logrus.Fields{"gossip": g.Addr(), "http": a.httpAddr, "cluster": cfg.cluster, "tls": tlsConfig != nil}).WithFields(dataFields("", data)).Info("example started")
	return a, nil
}
