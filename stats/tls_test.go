package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for a test, writing its PEM files
// to the test's temporary directory.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	caFile string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.caFile = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return path
}

// issue writes a certificate the CA signed, good for serving and for client
// authentication and naming the hosts given, and its key; it returns their
// files.
func (ca *testCA) issue(t *testing.T, name string, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     hosts,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return ca.write(t, name+".pem", "CERTIFICATE", der), ca.write(t, name+".key", "EC PRIVATE KEY", keyDER)
}

// startTLSCluster starts members with mutual TLS, certificates from ca
// naming "member.test", joined through the first, and waits until each
// sees all.
func startTLSCluster(t *testing.T, ca *testCA, n int) []*gossip.Gossip {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	var members []*gossip.Gossip
	for i := 0; i < n; i++ {
		cert, key := ca.issue(t, "member", "member.test")
		tc, err := gossip.TLSConfigFromFiles(cert, key, ca.caFile)
		require.NoError(t, err)
		cfg := gossip.Config{Addr: "127.0.0.1:0", Data: "m", GossipInterval: 20 * time.Millisecond,
			RPCTimeout: time.Second, Logger: log, TLS: tc}
		if i > 0 {
			cfg.Seeds = []string{members[0].Addr()}
		}
		g, err := gossip.NewWithConfig(cfg)
		require.NoError(t, err, "member %d", i)
		require.NoError(t, g.Start(), "member %d", i)
		t.Cleanup(g.Close)
		members = append(members, g)
	}
	require.Eventually(t, func() bool {
		for _, g := range members {
			if len(g.GetMembers()) != n {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "TLS cluster of %d did not converge", n)
	return members
}

func TestTLS(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	ms := startTLSCluster(t, ca, 2)
	cert, key := ca.issue(t, "stats")
	other := newTestCA(t, "other CA")
	otherCert, otherKey := other.issue(t, "intruder")
	tlsArgs := func(cert, key, ca string) []string {
		return []string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", ca}
	}

	t.Run("right certificate", func(t *testing.T) {
		args := append(tlsArgs(cert, key, ca.caFile), "-all", "-timeout", "2s", ms[0].Addr())
		code, out, errOut := runStats(t, args...)
		require.Equal(t, 0, code, "stderr: %s", errOut)
		for _, g := range ms {
			assert.Regexp(t, `(?m)^`+g.Addr()+`\s+\d+\s+2/2\s`, out, "row of %s", g.Addr())
		}
		assert.Regexp(t, `(?m)^queried:\s+2\s+\(2 answered\)$`, out)
	})

	t.Run("environment twins", func(t *testing.T) {
		env := map[string]string{"GOSSIP_TLS_CERT": cert, "GOSSIP_TLS_KEY": key, "GOSSIP_TLS_CA": ca.caFile}
		var out, errOut strings.Builder
		code := run(t.Context(), []string{ms[1].Addr()}, func(k string) string { return env[k] }, &out, &errOut)
		require.Equal(t, 0, code, "stderr: %s", errOut.String())
		assert.Regexp(t, `(?m)^`+ms[1].Addr()+`\s`, out.String())
	})

	t.Run("server name", func(t *testing.T) {
		args := append(tlsArgs(cert, key, ca.caFile), "-tls-server-name", "member.test", ms[0].Addr())
		code, _, errOut := runStats(t, args...)
		assert.Equal(t, 0, code, "the certificates name member.test; stderr: %s", errOut)

		args = append(tlsArgs(cert, key, ca.caFile), "-tls-server-name", "other.test", ms[0].Addr())
		code, _, errOut = runStats(t, args...)
		assert.Equal(t, 1, code, "the certificates do not name other.test")
		assert.Contains(t, errOut, "TLS handshake: ")
		assert.Contains(t, errOut, "other.test")
	})

	// Each failure is one line naming the address, then the summary line.
	fails := []struct {
		name string
		args []string
		want string
	}{
		{"no TLS", nil, "closed the connection without answering"},
		{"member from another CA", tlsArgs(otherCert, otherKey, other.caFile), "certificate signed by unknown authority"},
		{"client from another CA", tlsArgs(otherCert, otherKey, ca.caFile), "TLS refused by the member"},
	}
	for _, c := range fails {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := runStats(t, append(c.args, "-timeout", "2s", ms[0].Addr())...)
			assert.Less(t, time.Since(start), time.Second, "it fails at once, not at the timeout")
			assert.Equal(t, 1, code)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			require.Len(t, lines, 2, "stderr: %q", errOut)
			assert.Contains(t, lines[0], "stats: "+ms[0].Addr()+": ")
			assert.Contains(t, lines[0], c.want)
			if c.args == nil {
				assert.Contains(t, lines[0], "give -tls-cert, -tls-key and -tls-ca")
			}
			assert.Equal(t, "stats: no address answered", lines[1])
		})
	}
}

func TestTLSToPlainOrSilent(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	cert, key := ca.issue(t, "stats")
	tlsArgs := []string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", ca.caFile, "-timeout", "300ms"}
	plain := startCluster(t, "plain")[0].Addr()
	silent := listen(t, func(c net.Conn) { io.Copy(io.Discard, c) })

	cases := []struct{ name, addr, want string }{
		{"plain member", plain, "TLS handshake: "},
		{"silent", silent, "no answer within 300ms (TLS handshake)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := runStats(t, append(tlsArgs, c.addr)...)
			assert.Less(t, time.Since(start), 2*time.Second, "the handshake is bounded by -timeout")
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, "stats: "+c.addr+": "+c.want)
		})
	}
}

func TestTLSFlags(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	cert, key := ca.issue(t, "stats")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"cert only", []string{"-tls-cert", cert}, nil, "-tls-key and -tls-ca not given"},
		{"no key", []string{"-tls-cert", cert, "-tls-ca", ca.caFile}, nil, "-tls-key not given"},
		{"key from the environment, no CA", []string{"-tls-cert", cert}, map[string]string{"GOSSIP_TLS_KEY": key}, "-tls-ca not given"},
		{"server name alone", []string{"-tls-server-name", "member.test"}, nil, "-tls-server-name needs -tls-cert, -tls-key and -tls-ca"},
		{"missing file", []string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", filepath.Join(ca.dir, "none.pem")}, nil, "none.pem"},
		{"not a CA file", []string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", key}, nil, "no PEM certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := run(t.Context(), append(c.args, "127.0.0.1:1"), func(k string) string { return c.env[k] }, &out, &errOut)
			assert.Equal(t, 2, code, "a usage error")
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			require.Len(t, lines, 1, "stderr: %q", errOut.String())
			assert.True(t, strings.HasPrefix(lines[0], "stats: "), lines[0])
			assert.Contains(t, lines[0], c.want)
			assert.Empty(t, out.String())
		})
	}
}
