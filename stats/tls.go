package main

// Mutual TLS, for clusters whose members set gossip.Config.TLS. Such a
// member completes a handshake only with a client that presents a
// certificate signed by the cluster's CA, so stats needs one too: -tls-cert,
// -tls-key and -tls-ca, the same files a member uses.
//
// stats checks the member's certificate as members check each other's: its
// chain must lead to the CA, and, since members are known by addresses that
// certificates seldom name, its host name is checked only when
// -tls-server-name gives one.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/gossipfd/gossip"
)

// tlsFlags are the -tls-* flags.
type tlsFlags struct {
	cert, key, ca string
	serverName    string
}

// check requires -tls-cert, -tls-key and -tls-ca together, or none, and
// -tls-server-name only with them.
func (f tlsFlags) check() error {
	var given, missing []string
	for _, v := range []struct{ name, value string }{
		{"-tls-cert", f.cert}, {"-tls-key", f.key}, {"-tls-ca", f.ca},
	} {
		if v.value != "" {
			given = append(given, v.name)
		} else {
			missing = append(missing, v.name)
		}
	}
	switch {
	case len(given) > 0 && len(missing) > 0:
		return fmt.Errorf("stats: TLS needs -tls-cert, -tls-key and -tls-ca together (or their GOSSIP_TLS_* twins): %s not given",
			strings.Join(missing, " and "))
	case len(given) == 0 && f.serverName != "":
		return errors.New("stats: -tls-server-name needs -tls-cert, -tls-key and -tls-ca")
	}
	return nil
}

// clientConfig returns the tls.Config to dial members with, or nil for
// plain TCP if no TLS flag is set.
func (f tlsFlags) clientConfig() (*tls.Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.cert == "" {
		return nil, nil
	}
	base, err := gossip.TLSConfigFromFiles(f.cert, f.key, f.ca)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return clientTLS(base, f.serverName), nil
}

// clientTLS returns a copy of base, which holds the client certificate and
// the CA in RootCAs, that verifies the server's chain against the CA and,
// only if serverName is not empty, that the certificate names serverName.
func clientTLS(base *tls.Config, serverName string) *tls.Config {
	c := base.Clone()
	c.ServerName = serverName
	if serverName == "" {
		// Without a name, crypto/tls would refuse every certificate:
		// check the chain ourselves, and only the chain.
		roots := c.RootCAs
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error { return verifyServer(cs, roots) }
	}
	return c
}

// verifyServer checks that the server's certificate chains to roots and
// may serve.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the member sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("member certificate: %w", err)
	}
	return nil
}
