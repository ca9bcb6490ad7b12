package identity

import (
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
	bad := append([]byte(nil), id.Certificate().Certificate[0]...)
	bad[len(bad)-1] ^= 0xff // break the signature
	if _, err := PeerIDFromCerts([][]byte{bad}); err == nil {
		t.Fatal("certificate with a broken self-signature accepted")
	}
}
