package hostcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func peer(i int) proto.PeerInfo {
	var id proto.PeerID
	binary.BigEndian.PutUint32(id[:], uint32(i)+1)
	return proto.PeerInfo{ID: id, Addrs: []string{fmt.Sprintf("127.0.0.1:%d", 7400+i)}, Role: proto.RoleSupernode,
		Load: proto.Load{Leaves: uint32(i), Capacity: 100}}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBoundedEvictsLeastRecentlySeen(t *testing.T) {
	c := New(Config{Max: 3})
	for i := range 5 {
		c.Add(t0.Add(time.Duration(i)*time.Second), peer(i))
	}
	// Seeing peer 2 again makes it the newest; adding one more evicts peer 3.
	c.Add(t0.Add(10*time.Second), peer(2))
	c.Add(t0.Add(11*time.Second), peer(5))
	var got []proto.PeerID
	for _, e := range c.Entries() {
		got = append(got, e.ID)
	}
	want := []proto.PeerID{peer(5).ID, peer(2).ID, peer(4).ID}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries %v, want %v (newest first, oldest evicted)", got, want)
	}
}

func TestAddSkipsUnusable(t *testing.T) {
	c := New(Config{})
	leaf := peer(1)
	leaf.Role = proto.RoleLeaf
	noAddr := peer(2)
	noAddr.Addrs = []string{"not an address"}
	zero := peer(3)
	zero.ID = proto.PeerID{}
	many := peer(4)
	for i := range 20 {
		many.Addrs = append(many.Addrs, fmt.Sprintf("10.0.0.%d:1", i))
	}
	c.Add(t0, leaf, noAddr, zero, many)
	es := c.Entries()
	if len(es) != 1 || es[0].ID != many.ID || len(es[0].Addrs) != proto.MaxAddrs {
		t.Fatalf("entries %+v: want only peer 4 with %d addresses", es, proto.MaxAddrs)
	}
	// An older sighting does not replace a newer one.
	old := peer(4)
	old.Load.Leaves = 99
	c.Add(t0.Add(-time.Hour), old)
	if e := c.Entries()[0]; e.Load.Leaves != 4 || !e.LastSeen.Equal(t0) {
		t.Fatalf("older sighting replaced the entry: %+v", e)
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	c := New(Config{Path: path})
	if err := c.Load(); err != nil {
		t.Fatalf("a missing file is not an error: %v", err)
	}
	for i := range 4 {
		c.Add(t0.Add(time.Duration(i)*time.Minute), peer(i))
	}
	c.Forget(peer(0).ID)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2 := New(Config{Path: path})
	if err := c2.Load(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c2.Entries()) != fmt.Sprint(c.Entries()) {
		t.Fatalf("reloaded %+v, saved %+v", c2.Entries(), c.Entries())
	}
	if info := c2.Infos()[0]; info.ID != peer(3).ID || info.Role != proto.RoleSupernode || info.Load.Leaves != 3 {
		t.Fatalf("first info %+v", info)
	}
	// No temporary files are left behind.
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	// A smaller bound on reload keeps the newest.
	c3 := New(Config{Path: path, Max: 1})
	if err := c3.Load(); err != nil || c3.Len() != 1 || c3.Entries()[0].ID != peer(3).ID {
		t.Fatalf("bounded reload: %v %+v", err, c3.Entries())
	}
}

func TestCorruptFileIgnored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	c := New(Config{Path: path})
	c.Add(t0, peer(1), peer(2))
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	flipped := strings.Replace(string(good), "127.0.0.1:7401", "127.0.0.1:7409", 1)
	for name, b := range map[string][]byte{
		"truncated":      good[:len(good)/2],
		"bad checksum":   []byte(flipped),
		"not json":       []byte("\x00\x01garbage"),
		"wrong version":  []byte(strings.Replace(string(good), `"version":1`, `"version":7`, 1)),
		"entries object": []byte(wrap("{}")),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			c := New(Config{Path: path})
			c.Add(t0, peer(5))
			err := c.Load()
			if err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("Load of a %s file: %v, want a corrupt-file error", name, err)
			}
			if c.Len() != 1 {
				t.Fatalf("a failed load changed the cache: %+v", c.Entries())
			}
			// The next save replaces the bad file.
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
			if err := New(Config{Path: path}).Load(); err != nil {
				t.Fatalf("after a save: %v", err)
			}
		})
	}
	// Invalid entries under a valid checksum are dropped, the rest kept.
	raw := `[{"peer_id":"` + peer(1).ID.String() + `","addrs":["127.0.0.1:1"]},{"peer_id":"` + peer(2).ID.String() + `","addrs":["nope"]}]`
	if err := os.WriteFile(path, []byte(wrap(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := New(Config{Path: path})
	if err := c2.Load(); err != nil || c2.Len() != 1 {
		t.Fatalf("load with one bad entry: %v, %d entries", err, c2.Len())
	}
	// A file too large to be a cache is refused before it is parsed.
	if err := os.WriteFile(path, make([]byte, maxFileSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(Config{Path: path}).Load(); err == nil {
		t.Fatal("an oversized file loaded")
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// wrap makes a cache file around raw entries with a valid checksum.
func wrap(raw string) string {
	return fmt.Sprintf(`{"version":1,"entries":%s,"sha256":"%s"}`, raw, sha(raw))
}

func FuzzDecode(f *testing.F) {
	c := New(Config{Path: filepath.Join(f.TempDir(), FileName)})
	c.Add(t0, peer(1), peer(2))
	if err := c.Save(); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(c.cfg.Path)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte(`{"version":1,"entries":[],"sha256":"` + sha("[]") + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decode(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if e.ID.IsZero() || len(e.Addrs) == 0 || len(e.Addrs) > proto.MaxAddrs {
				t.Fatalf("decode kept an invalid entry %+v", e)
			}
		}
	})
}
