package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for a test; it writes its PEM
// files to the test's temporary directory.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	caFile string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
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

// issue writes a certificate the CA signed, for serving and for client
// authentication, and its key, and returns their files.
func (ca *testCA) issue(t *testing.T, name string) (certFile, keyFile string) {
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
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return ca.write(t, name+".pem", "CERTIFICATE", der), ca.write(t, name+".key", "EC PRIVATE KEY", keyDER)
}

func TestParseTLSAndCluster(t *testing.T) {
	env := map[string]string{
		"GOSSIP_CLUSTER":  "staging",
		"GOSSIP_TLS_CERT": "/etc/gossip/m.pem",
		"GOSSIP_TLS_KEY":  "/etc/gossip/m.key",
		"GOSSIP_TLS_CA":   "/etc/gossip/ca.pem",
	}
	c, err := parseConfig([]string{"-cluster", "prod", "-tls-ca", "ca2.pem"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "prod", c.cluster, "the flag wins over GOSSIP_CLUSTER")
	assert.Equal(t, "/etc/gossip/m.pem", c.tlsCert, "from the environment")
	assert.Equal(t, "/etc/gossip/m.key", c.tlsKey, "from the environment")
	assert.Equal(t, "ca2.pem", c.tlsCA, "the flag wins over GOSSIP_TLS_CA")

	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, config{}, config{cluster: c.cluster, tlsCert: c.tlsCert, tlsKey: c.tlsKey, tlsCA: c.tlsCA},
		"no cluster name and no TLS by default")

	bad := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"cert only", []string{"-tls-cert", "m.pem"}, nil, "-tls-key and -tls-ca not given"},
		{"no key", []string{"-tls-cert", "m.pem", "-tls-ca", "ca.pem"}, nil, "-tls-key not given"},
		{"CA from the environment only", nil, map[string]string{"GOSSIP_TLS_CA": "ca.pem"}, "-tls-cert and -tls-key not given"},
	}
	for _, c := range bad {
		_, err := parseConfig(c.args, func(k string) string { return c.env[k] }, io.Discard)
		require.Error(t, err, c.name)
		assert.Contains(t, err.Error(), "TLS needs -tls-cert, -tls-key and -tls-ca together", c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
		assert.NotContains(t, err.Error(), "\n", "%s: one line", c.name)
	}
}

// tlsConfig is the tls.Config of a member or client with a certificate
// from ca.
func tlsConfig(t *testing.T, ca *testCA, name string) *tls.Config {
	cert, key := ca.issue(t, name)
	c, err := gossip.TLSConfigFromFiles(cert, key, ca.caFile)
	require.NoError(t, err)
	c.InsecureSkipVerify = true // the certificates name no host; the test trusts its own CA
	return c
}

// getMembers calls Gossip.GetMembers over conn, with the library's own
// types, and closes conn.
func getMembers(conn net.Conn) ([]gossip.Member, error) {
	client := rpc.NewClient(conn)
	defer client.Close()
	var resp gossip.GetMembersResponse
	err := client.Call("Gossip.GetMembers", gossip.GetMembersRequest{}, &resp)
	return resp.Members, err
}

func TestStartTLS(t *testing.T) {
	ca := newTestCA(t)
	cfg := func(name string) config {
		cert, key := ca.issue(t, name)
		return config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval,
			cluster: "prod", tlsCert: cert, tlsKey: key, tlsCA: ca.caFile}
	}
	log, hook := test.NewNullLogger()
	first, err := start(cfg("first"), log)
	require.NoError(t, err)
	defer first.shutdown(time.Second)
	c := cfg("second")
	c.join = first.g.Addr()
	second, err := start(c, quietLogger())
	require.NoError(t, err)
	defer second.shutdown(time.Second)
	require.Eventually(t, func() bool {
		_, body := get(t, "http://"+first.httpAddr+"/services/web")
		return strings.Count(body, `"endpoint"`) == 2
	}, waitFor, tick, "the TLS members found each other")

	// A client with a certificate from the CA reads the members; a plain
	// one cannot.
	conn, err := tls.Dial("tcp", first.g.Addr(), tlsConfig(t, ca, "reader"))
	require.NoError(t, err)
	ms, err := getMembers(conn)
	require.NoError(t, err, "GetMembers over TLS")
	assert.Len(t, ms, 2)
	plain, err := net.Dial("tcp", first.g.Addr())
	require.NoError(t, err)
	_, err = getMembers(plain)
	assert.Error(t, err, "GetMembers without TLS")

	// A member of another cluster, with a good certificate, is refused.
	other, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Seeds: []string{first.g.Addr()},
		ClusterName: "staging", TLS: tlsConfig(t, ca, "other"), GossipInterval: interval, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, other.Start())
	defer other.Close()
	require.Eventually(t, func() bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "refusing a member of another cluster") {
				return true
			}
		}
		return false
	}, waitFor, tick, "the first member refused the staging one")
	for _, m := range first.g.GetMembers() {
		assert.NotEqual(t, other.Addr(), m.Addr, "a member of another cluster is not listed")
	}
}

func TestStartBadTLSFiles(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, "m")
	cases := []struct {
		name              string
		cert, key, caFile string
		want              string
	}{
		{"missing certificate", filepath.Join(ca.dir, "none.pem"), key, ca.caFile, "certificate"},
		{"key of no certificate", cert, ca.caFile, ca.caFile, "certificate"},
		{"CA file not PEM", cert, key, key, "no PEM certificate"},
	}
	for _, c := range cases {
		_, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval,
			tlsCert: c.cert, tlsKey: c.key, tlsCA: c.caFile}, quietLogger())
		require.Error(t, err, c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
	}
}
