package node

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func sn(i byte, free int) proto.PeerInfo {
	return proto.PeerInfo{ID: proto.PeerID{i}, Addrs: []string{"127.0.0.1:1"}, Role: proto.RoleSupernode,
		Load: proto.Load{Leaves: uint32(10 - free), Capacity: 10}}
}

func ids(ps []proto.PeerInfo) []byte {
	var out []byte
	for _, p := range ps {
		out = append(out, p.ID[0])
	}
	return out
}

func TestAttachPlanPick(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newAttachPlan(1)
	cands := []proto.PeerInfo{sn(1, 5), sn(2, 5), sn(1, 5), sn(3, 5), sn(4, 5)}
	attached := map[byte]bool{2: true}
	skip := func(id proto.PeerID) bool { return attached[id[0]] }
	if got := ids(p.pick(now, cands, skip, 2, false)); string(got) != "\x01\x03" {
		t.Fatalf("pick = %v, want [1 3]: in order, without the attached one", got)
	}
	// A failed candidate waits 1 s, then 2 s after a second failure.
	p.failed(now, proto.PeerID{1})
	if got := ids(p.pick(now.Add(500*time.Millisecond), cands, skip, 5, false)); string(got) != "\x03\x04" {
		t.Fatalf("pick after a failure = %v, want [3 4]", got)
	}
	if got := ids(p.pick(now.Add(1100*time.Millisecond), cands, skip, 1, false)); string(got) != "\x01" {
		t.Fatalf("pick after the wait = %v, want [1]", got)
	}
	p.failed(now, proto.PeerID{1})
	if got := ids(p.pick(now.Add(1500*time.Millisecond), cands, skip, 1, false)); string(got) != "\x03" {
		t.Fatalf("second failure: %v, want 1 still waiting", got)
	}
	// A lost supernode waits lostHold even on its first loss; success forgets.
	p.lost(now, proto.PeerID{3})
	if got := ids(p.pick(now.Add(lostHold-time.Millisecond), cands, skip, 5, false)); string(got) != "\x01\x04" {
		t.Fatalf("pick after a loss = %v, want [1 4]", got)
	}
	p.attached(proto.PeerID{3})
	if got := ids(p.pick(now.Add(time.Millisecond), cands, skip, 5, false)); string(got) != "\x03\x04" {
		t.Fatalf("pick after success = %v, want [3 4] (1 still waiting)", got)
	}
}

// A supernode that refused (full) waits refusedHold however often it
// refused; a leaf left with no supernode asks it again at once, but not one
// that could not be reached.
func TestAttachPlanRefused(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newAttachPlan(1)
	cands := []proto.PeerInfo{sn(1, 0), sn(2, 5)}
	none := func(proto.PeerID) bool { return false }
	for range 6 {
		p.refused(now, proto.PeerID{1})
	}
	for range 4 { // 8 s
		p.failed(now, proto.PeerID{2})
	}
	if got := ids(p.pick(now.Add(refusedHold-time.Millisecond), cands, none, 5, false)); len(got) != 0 {
		t.Fatalf("pick while both wait = %v, want none", got)
	}
	if got := ids(p.pick(now.Add(refusedHold), cands, none, 5, false)); string(got) != "\x01" {
		t.Fatalf("pick after refusedHold = %v, want [1]: six refusals still wait only %v", got, refusedHold)
	}
	if got := ids(p.pick(now.Add(time.Millisecond), cands, none, 5, true)); string(got) != "\x01" {
		t.Fatalf("urgent pick = %v, want [1] (the refusal skipped, the unreachable one still waiting)", got)
	}
}

func TestAttachPlanOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newAttachPlan(7)
	cands := []proto.PeerInfo{sn(1, 0), sn(2, 3), sn(3, 0), sn(4, 3), sn(5, 3)}
	seen := []time.Time{now, now, now.Add(-time.Hour), now.Add(-2 * time.Hour), now}
	firsts := map[byte]int{}
	for range 200 {
		got := ids(p.order(now, cands, seen))
		// Recent with room (2, 5) in random order, then recent and full (1),
		// then stale ones newest first (3, then 4).
		if (got[0] != 2 && got[0] != 5) || (got[1] != 2 && got[1] != 5) || got[2] != 1 || got[3] != 3 || got[4] != 4 {
			t.Fatalf("order %v", got)
		}
		firsts[got[0]]++
	}
	if firsts[2] < 50 || firsts[5] < 50 {
		t.Errorf("recent supernodes with room are not shuffled: first counts %v", firsts)
	}
}

func TestAttachPlanBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newAttachPlan(1)
	for i := range 10 * proto.MaxPeers {
		var id proto.PeerID
		id[0], id[1] = byte(i), byte(i>>8)
		p.failed(now.Add(time.Duration(i)*time.Minute), id)
	}
	if len(p.fails) > 4*proto.MaxPeers+1 {
		t.Fatalf("%d failures remembered, want at most %d", len(p.fails), 4*proto.MaxPeers+1)
	}
}

func TestSupernodesValidated(t *testing.T) {
	base := Config{StateDir: "s", Listen: ":0", Downloads: "d", Bootstraps: []string{"127.0.0.1:1"}}
	for _, tc := range []struct {
		in, want int
		ok       bool
	}{{0, DefaultSupernodes, true}, {1, 1, true}, {5, 5, true}, {6, 0, false}, {-1, 0, false}} {
		c := base
		c.Supernodes = tc.in
		err := c.validate()
		if (err == nil) != tc.ok || (tc.ok && c.Supernodes != tc.want) {
			t.Errorf("Supernodes %d: %v, got %d", tc.in, err, c.Supernodes)
		}
	}
}

// TestLeafSearchesThroughEitherSupernode: two leaves attached to both of two
// supernodes. A file indexed at both is reported once; with one supernode
// stopped, searches still find it through the other at once, and the
// leaves' host caches hold both supernodes.
func TestLeafSearchesThroughEitherSupernode(t *testing.T) {
	bs := startBootstrap(t)
	snA := startNode(t, "sn-a", func(c *Config) { c.Role, c.Bootstraps = RoleSupernode, []string{bs} })
	snB := startNode(t, "sn-b", func(c *Config) { c.Role, c.Bootstraps = RoleSupernode, []string{bs} })
	shared := t.TempDir()
	writeMP3(t, shared, "twice indexed.mp3", "Both", "Twice", 7)
	holder := startNode(t, "holder", func(c *Config) { c.Bootstraps, c.ShareDirs = []string{bs}, []string{shared} })
	asker := startNode(t, "asker", func(c *Config) { c.Bootstraps = []string{bs} })
	for _, r := range []*running{holder, asker} {
		waitFor(t, "two attachments", func() bool { return len(r.n.Status().Attachments) == 2 })
	}
	waitFor(t, "the file indexed at both supernodes", func() bool {
		a, b := snA.n.Status().Supernode.IndexFiles, snB.n.Status().Supernode.IndexFiles
		return a == 1 && b == 1
	})
	find := func() ([]proto.Hit, error) {
		var hits []proto.Hit
		err := asker.n.Search(testCtx(t), "twice", 10, time.Second, func(h proto.Hit) bool {
			hits = append(hits, h)
			return true
		})
		return hits, err
	}
	hits, err := find()
	if err != nil || len(hits) != 1 || hits[0].Holder.ID != holder.n.PeerID() {
		t.Fatalf("search with both supernodes: %v, %+v; want the file once", err, hits)
	}
	if n := asker.n.Status().HostCache; n < 2 {
		t.Errorf("host cache holds %d supernodes, want both", n)
	}
	snA.stop()
	hits, err = find()
	if err != nil || len(hits) != 1 {
		t.Fatalf("search right after a supernode stopped: %v, %+v", err, hits)
	}
	waitFor(t, "the stopped supernode dropped", func() bool {
		st := asker.n.Status()
		return len(st.Attachments) == 1 && st.Attachments[0].Supernode.ID == snB.n.PeerID()
	})
	// It told its leaves goodbye as it stopped, rather than leaving them to
	// notice the silence.
	said := false
	for _, e := range asker.n.Status().Events {
		said = said || strings.Contains(e.What, "supernode said goodbye: supernode shutting down")
	}
	if !said {
		t.Errorf("no goodbye from the stopped supernode in the events: %+v", asker.n.Status().Events)
	}
}
