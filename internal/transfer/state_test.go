package transfer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func TestStateRoundTrip(t *testing.T) {
	c := newContent(5*proto.PieceSize+3, 30)
	p := &partial{cid: c.cid, name: "a b.mp3", size: uint64(len(c.data)), pieces: c.pieces, have: []byte{0xa0},
		started: time.Unix(0, 12345)}
	dir := t.TempDir()
	if err := savePartial(dir, p); err != nil {
		t.Fatal(err)
	}
	got, err := loadPartial(statePath(dir, c.cid))
	if err != nil {
		t.Fatal(err)
	}
	if got.cid != p.cid || got.name != p.name || got.size != p.size || len(got.pieces) != 6 || got.pieces[5] != c.pieces[5] ||
		string(got.have) != string(p.have) || !got.started.Equal(p.started) {
		t.Fatalf("round trip: %+v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}

func TestStateRejectsDamage(t *testing.T) {
	c := newContent(3*proto.PieceSize, 31)
	good := (&partial{cid: c.cid, name: "x", size: uint64(len(c.data)), pieces: c.pieces, have: []byte{0}}).encode()
	other := newContent(3*proto.PieceSize, 32)
	lying := (&partial{cid: c.cid, name: "x", size: uint64(len(c.data)), pieces: other.pieces, have: []byte{0}}).encode()
	badName := (&partial{cid: c.cid, name: "../x", size: uint64(len(c.data)), pieces: c.pieces, have: []byte{0}}).encode()
	flipped := append([]byte(nil), good...)
	flipped[60] ^= 1
	for name, b := range map[string][]byte{
		"truncated": good[:len(good)-1], "flipped": flipped, "empty": nil, "not ours": []byte(strings.Repeat("x", 200)),
		"pieces for another file": lying, "path as name": badName,
	} {
		if _, err := decodePartial(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestNewManagerDropsBadState: unreadable state files are removed, good
// ones become downloads waiting for Start.
func TestNewManagerDropsBadState(t *testing.T) {
	r := newRig(t)
	dir, state := dirs(t)
	pdir := filepath.Join(state, "partial")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := newContent(3*proto.PieceSize, 33)
	if err := savePartial(pdir, &partial{cid: c.cid, name: "ok.bin", size: uint64(len(c.data)), pieces: c.pieces, have: []byte{0}}); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(pdir, strings.Repeat("ab", 32)+".state")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "x.state.tmp-123"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := r.managerConfig(dir, state)
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := m.List()
	if len(l) != 1 || l[0].Name != "ok.bin" || l[0].State != StateDownloading {
		t.Fatalf("List: %+v", l)
	}
	if ents, _ := os.ReadDir(pdir); len(ents) != 1 {
		t.Fatalf("state folder: %v", ents)
	}
}
