package supernode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/overlaytest"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newHost(t *testing.T, ctx context.Context, n *memnet.Network, id int, cfg supernode.Config) *overlaytest.Host {
	t.Helper()
	tr, err := n.Listen("", pid(id))
	if err != nil {
		t.Fatal(err)
	}
	h := overlaytest.NewHost(ctx, tr, supernode.RuntimeConfig{Core: cfg, Logger: zaptest.NewLogger(t),
		TickEvery: 20 * time.Millisecond, SearchLifetime: 2 * time.Second})
	t.Cleanup(func() { h.Close(); tr.Close() })
	return h
}

func newLeaf(t *testing.T, ctx context.Context, n *memnet.Network, id int, sn *overlaytest.Host, files ...proto.FileEntry) *overlaytest.Leaf {
	t.Helper()
	tr, err := n.Listen("", pid(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	l, err := overlaytest.Attach(ctx, tr, sn.Info(), files)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func pid(n int) proto.PeerID { return proto.PeerID{byte(n >> 8), byte(n), 0xaa} }

func entry(n int, name string) proto.FileEntry {
	return proto.FileEntry{ContentID: proto.ContentID{byte(n), byte(n >> 8), 1}, Name: name, Size: 1000, Media: proto.MediaAudio}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRuntimeMeshSearchOverMemnet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.NewNetwork(1)
	n.SetDefaultLink(memnet.Link{Latency: time.Millisecond})
	a := newHost(t, ctx, n, 1, supernode.Config{MeshDegree: 1})
	b := newHost(t, ctx, n, 2, supernode.Config{MeshDegree: 1})
	b.Link(a)
	waitFor(t, 5*time.Second, "mesh link did not come up", func() bool { return a.HasNeighbour(pid(2)) })
	asker := newLeaf(t, ctx, n, 101, a)
	newLeaf(t, ctx, n, 102, b, entry(7, "far away song.mp3"))
	hits, _, err := asker.Search(ctx, "far away", 500*time.Millisecond, nil)
	if err != nil || len(hits) != 1 || hits[0].Hops != 1 || hits[0].Holder.ID != pid(102) {
		t.Fatalf("hits %+v err %v; want one hit from leaf 102 one hop away", hits, err)
	}
}

// TestFloodingLeafDoesNotSlowOthers: one leaf sends queries far over its
// rate limit; it is refused with a clear code, and another leaf's searches
// are served as fast as before.
func TestFloodingLeafDoesNotSlowOthers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.NewNetwork(1)
	sn := newHost(t, ctx, n, 1, supernode.Config{LeafQueryRate: 5, LeafQueryBurst: 5})
	flooder := newLeaf(t, ctx, n, 101, sn)
	good := newLeaf(t, ctx, n, 102, sn)
	newLeaf(t, ctx, n, 103, sn, entry(1, "needle in haystack.mp3"))

	timeSearch := func() time.Duration {
		hits, first, err := good.Search(ctx, "needle", 200*time.Millisecond, nil)
		if err != nil || len(hits) != 1 {
			t.Fatalf("good leaf's search: %d hits, %v", len(hits), err)
		}
		return first
	}
	before := timeSearch()

	limited := 0
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := 0; i < 200 && ctx.Err() == nil; i++ {
			_, _, err := flooder.Search(ctx, fmt.Sprintf("flood %d", i), 50*time.Millisecond, nil)
			if proto.CodeOf(err) == proto.CodeRateLimited {
				limited++
			}
		}
	}()
	var during time.Duration
	for range 3 {
		during = max(during, timeSearch())
	}
	<-floodDone
	if limited < 100 {
		t.Errorf("only %d of 200 flood queries were rate limited", limited)
	}
	var drops uint64
	sn.RT.With(func(c *supernode.Core) { drops = c.Stats().Drops[supernode.DropRateLimited] })
	if drops == 0 {
		t.Error("rate-limited queries were not counted")
	}
	t.Logf("good leaf's first hit: %v before the flood, at most %v during it", before, during)
	// Behaviour, not speed: the first hit still comes well inside the
	// search window (200 ms) while the flood runs.
	if during > 150*time.Millisecond {
		t.Errorf("good leaf's first hit took %v during the flood", during)
	}
	// The query over the length cap gets a clear error.
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	if _, _, err := good.Search(ctx, string(long), time.Second, nil); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Errorf("300-byte query: %v, want bad request", err)
	}
}

// TestLeafSessionPeerListAndGoodbye: on a leaf's session stream an empty
// PeerList asks for the supernode's (itself and its mesh), and a supernode
// that stops tells the leaf goodbye before it goes.
func TestLeafSessionPeerListAndGoodbye(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.NewNetwork(1)
	a := newHost(t, ctx, n, 1, supernode.Config{MeshDegree: 1})
	b := newHost(t, ctx, n, 2, supernode.Config{MeshDegree: 1})
	b.Link(a)
	waitFor(t, 5*time.Second, "mesh link did not come up", func() bool { return a.HasNeighbour(pid(2)) })
	leaf := newLeaf(t, ctx, n, 101, a)
	defer leaf.Close()
	if err := leaf.St.Send(&proto.PeerList{}); err != nil {
		t.Fatal(err)
	}
	m, err := leaf.St.Recv()
	pl, ok := m.(*proto.PeerList)
	if err != nil || !ok {
		t.Fatalf("answer to a PeerList on the leaf session: %v %v", m, err)
	}
	got := map[proto.PeerID]bool{}
	for _, p := range pl.Peers {
		got[p.ID] = true
	}
	if !got[pid(1)] || !got[pid(2)] || pl.Peers[0].Load.Leaves != 1 {
		t.Fatalf("peer list %+v: want the supernode (with its one leaf) and its neighbour", pl.Peers)
	}
	// Close waits for the leaf to hang up after the goodbye (here it does
	// when it reads it).
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	m, err = leaf.St.Recv()
	if bye, ok := m.(*proto.Goodbye); err != nil || !ok || bye.Reason == "" {
		t.Fatalf("after Close the leaf read %v %v, want a Goodbye", m, err)
	}
	leaf.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the leaf hung up")
	}
}
