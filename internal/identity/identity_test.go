package identity

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-p2p/strata/proto"
)

func TestLoadOrCreateKeepsPeerID(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	b, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if a.PeerID() != b.PeerID() {
		t.Fatalf("peer ID changed across restarts: %s then %s", a.PeerID(), b.PeerID())
	}
	if got, err := proto.ParsePeerID(a.PeerID().String()); err != nil || got != a.PeerID() {
		t.Fatalf("peer ID text form does not parse back: %v", err)
	}
}

func TestRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreate(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: got %v, want an error telling to chmod 600", err)
	}
}

func TestRefusesCorruptKey(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "not a key at all",
		"truncated": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreate(dir)
			if err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("got %v, want a corrupt-key error", err)
			}
			// The corrupt file is left alone, not replaced.
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Fatal("corrupt key file was modified")
			}
		})
	}
}

func TestPeerIDFromCerts(t *testing.T) {
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := PeerIDFromCerts(id.Certificate().Certificate)
	if err != nil || got != id.PeerID() {
		t.Fatalf("got %s, %v; want %s", got, err, id.PeerID())
	}
	if _, err := PeerIDFromCerts(nil); err == nil {
		t.Fatal("no certificate accepted")
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PeerIDFromCerts([][]byte{id.Certificate().Certificate[0], other.Certificate().Certificate[0]}); err == nil {
		t.Fatal("chain of two certificates accepted")
	}
	if _, err := PeerIDFromCerts([][]byte{[]byte("not a certificate")}); err == nil {
		t.Fatal("garbage certificate accepted")
	}
}

// handshake runs a TLS 1.3 handshake between client and server certificates
// over loopback TCP and returns the peer IDs each side derived.
func handshake(t *testing.T, client, server tls.Certificate, expect proto.PeerID) (atServer, atClient proto.PeerID, err error) {
	t.Helper()
	base := func(cert tls.Certificate, expect proto.PeerID, got *proto.PeerID) *tls.Config {
		c := (&Identity{cert: cert}).TLSConfig(expect, nil)
		inner := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := inner(cs); err != nil {
				return err
			}
			*got, _ = PeerIDOfChain(cs.PeerCertificates)
			return nil
		}
		return c
	}
	// TCP on loopback, not net.Pipe: both ends write at once in a TLS 1.3
	// handshake, which an unbuffered pipe deadlocks on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := tls.Server(a, base(server, proto.PeerID{}, &atServer))
	cli := tls.Client(b, base(client, expect, &atClient))
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte{1})
		}
		a.Close() // an alert left unread must not block
		errc <- err
	}()
	// A TLS 1.3 client learns that the server refused its certificate on
	// its first read.
	cerr := cli.Handshake()
	if cerr == nil {
		_, cerr = cli.Read(make([]byte, 1))
	}
	b.Close()
	serr := <-errc
	return atServer, atClient, errors.Join(cerr, serr)
}

// The handshake, not the certificate's self-signature, is what binds a
// connection to a peer ID: presenting someone's certificate without their
// key fails on either side.
func TestHandshakeProvesKeyPossession(t *testing.T) {
	alice, _ := Generate()
	bob, _ := Generate()
	atServer, atClient, err := handshake(t, alice.Certificate(), bob.Certificate(), bob.PeerID())
	if err != nil {
		t.Fatalf("honest handshake failed: %v", err)
	}
	if atServer != alice.PeerID() || atClient != bob.PeerID() {
		t.Fatalf("derived %s / %s, want %s / %s", atServer, atClient, alice.PeerID(), bob.PeerID())
	}
	stolen := func(victim, thief *Identity) tls.Certificate {
		return tls.Certificate{Certificate: victim.Certificate().Certificate, PrivateKey: thief.priv}
	}
	mallory, _ := Generate()
	if _, _, err := handshake(t, stolen(alice, mallory), bob.Certificate(), bob.PeerID()); err == nil {
		t.Fatal("client presenting alice's certificate without her key was accepted")
	}
	if _, _, err := handshake(t, alice.Certificate(), stolen(bob, mallory), bob.PeerID()); err == nil {
		t.Fatal("server presenting bob's certificate without his key was accepted")
	}
	if _, _, err := handshake(t, alice.Certificate(), mallory.Certificate(), bob.PeerID()); err == nil {
		t.Fatal("server with the wrong peer ID was accepted")
	}
}
