package supernode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/overlaytest"
	"github.com/strata-p2p/strata/internal/session"
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

// TestHandOff: a supernode stepping down tells its leaf to move (naming
// the other supernode), refuses new leaves, and returns once the leaf has
// said goodbye.
func TestHandOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := memnet.NewNetwork(1)
	a := newHost(t, ctx, n, 1, supernode.DefaultConfig())
	b := newHost(t, ctx, n, 2, supernode.DefaultConfig())
	leaf := newLeaf(t, ctx, n, 10, a, entry(1, "one.mp3"))

	type result struct{ told, left int }
	done := make(chan result, 1)
	go func() {
		told, left := a.RT.HandOff(ctx, []proto.PeerInfo{b.Info(), a.Info()}, "asked to step down")
		done <- result{told, left}
	}()
	m, err := leaf.St.Recv()
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := m.(*proto.Move)
	if !ok || len(mv.Peers) != 1 || mv.Peers[0].ID != b.Info().ID || mv.Reason != "asked to step down" {
		t.Fatalf("leaf got %T %+v, want a Move to b only", m, m)
	}
	// While it drains, the supernode takes no new leaf.
	tr, err := n.Listen("", pid(11))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := overlaytest.Attach(ctx, tr, a.Info(), nil); err == nil {
		t.Fatal("a draining supernode took a new leaf")
	}
	select {
	case r := <-done:
		t.Fatalf("hand-off returned %+v before the leaf left", r)
	default:
	}
	if err := leaf.St.Send(&proto.Goodbye{Reason: "moved"}); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.told != 1 || r.left != 0 {
		t.Fatalf("hand-off: told %d, left %d; want 1, 0", r.told, r.left)
	}
	leaf.Close()
}

// TestPipelinedAttachRefusedKeepsRedirect: a leaf uploads its whole share
// list before reading the AttachReply; a full supernode still answers with
// its redirect, and indexes none of the refused leaf's files.
func TestPipelinedAttachRefusedKeepsRedirect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.NewNetwork(1)
	a := newHost(t, ctx, n, 1, supernode.Config{MaxLeaves: 1, MeshDegree: 1})
	b := newHost(t, ctx, n, 2, supernode.Config{MeshDegree: 1})
	b.Link(a)
	waitFor(t, 5*time.Second, "mesh link did not come up", func() bool { return a.HasNeighbour(pid(2)) })
	newLeaf(t, ctx, n, 101, a, entry(1, "first leaf song.mp3"))

	tr, err := n.Listen("", pid(102))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c, err := tr.Dial(ctx, a.Info().Addrs[0], pid(1))
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Client(ctx, c, overlaytest.HelloFor(proto.RoleLeaf, tr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseWithError(proto.CodeOK, "")
	st, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := make([]proto.FileEntry, 3*proto.MaxShareBatch)
	for i := range files {
		files[i] = entry(1000+i, fmt.Sprintf("refused leaf song %d.mp3", i))
	}
	reply, err := supernode.AttachAndUpload(st, 0, files)
	if err != nil {
		t.Fatalf("pipelined attach to a full supernode: %v", err)
	}
	if reply.Accepted || len(reply.Redirect) == 0 || reply.Redirect[0].ID != pid(2) {
		t.Fatalf("reply %+v: want a refusal redirecting to supernode 2", reply)
	}
	var files1 uint32
	a.RT.With(func(c *supernode.Core) { files1 = c.Load().IndexFiles })
	if files1 != 1 {
		t.Fatalf("full supernode indexes %d files, want only the first leaf's 1", files1)
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

// TestReplacedLeafSessionIsInert: a leaf that attaches again (a new session
// stream) replaces its old session; what arrives on the old stream no longer
// changes the index, and the old stream is ended.
func TestReplacedLeafSessionIsInert(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := memnet.NewNetwork(1)
	a := newHost(t, ctx, n, 1, supernode.Config{MeshDegree: 1})
	old := newLeaf(t, ctx, n, 101, a, entry(1, "first session song.mp3"))
	defer old.Close()
	st, err := old.Sess.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := supernode.AttachAndUpload(st, 0, []proto.FileEntry{entry(2, "second session song.mp3")}); err != nil || !r.Accepted {
		t.Fatalf("re-attach: %+v %v", r, err)
	}
	files := func() uint32 {
		var f uint32
		a.RT.With(func(c *supernode.Core) { f = c.Load().IndexFiles })
		return f
	}
	waitFor(t, 5*time.Second, "the new session's file was not indexed", func() bool { return files() == 1 })
	if err := old.St.Send(&proto.ShareAdd{Entries: proto.List[proto.FileEntry]{entry(3, "stale session song.mp3")}}); err != nil {
		t.Fatal(err)
	}
	_ = old.St.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := old.St.Recv(); err != nil {
			break // the supernode ended the old stream
		}
	}
	if got := files(); got != 1 {
		t.Fatalf("index holds %d files after a ShareAdd on the replaced session, want 1", got)
	}
}
