package gossip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
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
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a member certificate signed by the CA, good for serving and
// for client authentication, naming no host.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// memberTLS is the Config.TLS of a member with a certificate from ca that
// trusts trust.
func memberTLS(t *testing.T, ca, trust *testCA) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "member")}, RootCAs: trust.pool, ClientCAs: trust.pool}
}

func TestTLSClusterConverges(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	gs := startCluster(t, 3, func(i int, c *Config) {
		c.TLS = memberTLS(t, ca, ca)
		c.Data = "tls"
	})
	requireView(t, gs, addrsOf(gs...), converge, "TLS members converge")
	assert.Equal(t, "tls", dataString(gs[1], gs[2].Addr()))
}

func TestTLSRefusesPeersWithoutACertificateFromTheCA(t *testing.T) {
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	cluster := startCluster(t, 2, func(i int, c *Config) { c.TLS = memberTLS(t, ca, ca) })
	requireView(t, cluster, addrsOf(cluster...), converge, "converge")
	seed := cluster[0].Addr()

	// A member with a certificate from another CA, trusting the cluster's
	// CA; a member trusting the cluster's CA with no certificate at all
	// cannot be built; a plain TCP member.
	foreignCfg := testConfig(t, seed)
	foreignCfg.TLS = memberTLS(t, other, ca)
	foreign := startMember(t, foreignCfg)
	plain := startMember(t, testConfig(t, seed))
	_, err := NewWithConfig(func() Config {
		c := testConfig(t, seed)
		c.TLS = &tls.Config{RootCAs: ca.pool}
		return c
	}())
	assert.ErrorContains(t, err, "no certificate")

	triedAndFailed := func(g *Gossip) bool {
		return g.backoff(seed) >= 4*g.cfg.GossipInterval
	}
	require.Eventually(t, func() bool { return triedAndFailed(foreign) && triedAndFailed(plain) }, converge, 10*time.Millisecond,
		"the outsiders keep failing to reach the seed")
	assert.Never(t, func() bool {
		return len(cluster[0].GetMembers()) != 2 || len(cluster[1].GetMembers()) != 2 ||
			len(foreign.GetMembers()) != 1 || len(plain.GetMembers()) != 1
	}, 10*cluster[0].FailureTime(), 10*time.Millisecond, "nobody joins")

	// Nor can a plain net/rpc client, or a TLS client without a
	// certificate, read the members.
	c := plainClient(t, seed)
	assert.Error(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &GetMembersResponse{}), "plain client")

	for name, cfg := range map[string]*tls.Config{
		"no certificate":         {RootCAs: ca.pool, InsecureSkipVerify: true},
		"another CA certificate": {RootCAs: ca.pool, InsecureSkipVerify: true, Certificates: []tls.Certificate{other.issue(t, "x")}},
	} {
		conn, err := tls.Dial("tcp", seed, cfg)
		if err != nil {
			continue // refused during the handshake: fine too
		}
		tc := rpc.NewClient(conn)
		assert.Error(t, tc.Call("Gossip.GetMembers", GetMembersRequest{}, &GetMembersResponse{}), name)
		tc.Close()
	}
}

func TestTLSHandshakeIsBounded(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	cfg := testConfig(t)
	cfg.TLS = memberTLS(t, ca, ca)
	cfg.RPCTimeout = 300 * time.Millisecond
	g := startMember(t, cfg)

	// A client that connects and never handshakes is dropped.
	c, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer c.Close()
	assert.True(t, closedWithin(c, 10*time.Second), "silent client not dropped")

	// Dialling a server that never handshakes gives up in time.
	hole := blackHole(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = g.transport.Dial(ctx, hole)
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "handshake with a black hole")
}

func TestTLSConfigFromFiles(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	leaf := ca.issue(t, "member")
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	require.NoError(t, err)
	certFile := write("member.pem", "CERTIFICATE", leaf.Certificate[0])
	keyFile := write("member-key.pem", "PRIVATE KEY", keyDER)
	caFile := write("ca.pem", "CERTIFICATE", ca.cert.Raw)

	cfg, err := TLSConfigFromFiles(certFile, keyFile, caFile)
	require.NoError(t, err)
	gs := startCluster(t, 2, func(i int, c *Config) { c.TLS = cfg })
	requireView(t, gs, addrsOf(gs...), converge, "members built from files converge")

	_, err = TLSConfigFromFiles(certFile, keyFile, filepath.Join(dir, "missing.pem"))
	assert.ErrorIs(t, err, os.ErrNotExist, "missing CA file")
	_, err = TLSConfigFromFiles(certFile, keyFile, keyFile)
	assert.ErrorContains(t, err, "no PEM certificate", "CA file holding a key")
	_, err = TLSConfigFromFiles(caFile, keyFile, caFile)
	assert.Error(t, err, "certificate and key do not match")
}

func TestNewTLSTransportErrors(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	cert := ca.issue(t, "member")
	for name, cfg := range map[string]*tls.Config{
		"nil":            nil,
		"no certificate": {RootCAs: ca.pool},
		"no CA":          {Certificates: []tls.Certificate{cert}},
	} {
		_, err := NewTLSTransport(nil, cfg, time.Second)
		assert.Error(t, err, name)
	}
	_, err := NewTLSTransport(nil, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}, 0)
	assert.Error(t, err, "zero handshake timeout")
}
