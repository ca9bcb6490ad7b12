package supernode

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

var t0 = time.Unix(1_700_000_000, 0)

func pid(n int) proto.PeerID { return proto.PeerID{byte(n >> 8), byte(n), 0xaa} }

func peer(n int) proto.PeerInfo {
	return proto.PeerInfo{ID: pid(n), Addrs: []string{fmt.Sprintf("127.0.0.1:%d", 7000+n)}}
}

func entry(n int, name string) proto.FileEntry {
	return proto.FileEntry{ContentID: proto.ContentID{byte(n), byte(n >> 8), 1}, Name: name, Size: 1000, Media: proto.MediaAudio}
}

// mesh drives several cores by delivering their Outs to each other, the way
// the runtime would, and collects what reaches local searches.
type mesh struct {
	cores map[proto.PeerID]*Core
	local map[proto.QueryID][]proto.Hit
	sent  int
}

func newMesh(n int, cfg Config) *mesh {
	m := &mesh{cores: map[proto.PeerID]*Core{}, local: map[proto.QueryID][]proto.Hit{}}
	for i := 1; i <= n; i++ {
		m.cores[pid(i)] = NewCore(cfg, peer(i))
	}
	return m
}

func (m *mesh) link(a, b int) {
	ca, cb := m.cores[pid(a)], m.cores[pid(b)]
	ca.addNeighbour(t0, cb.Info())
	cb.addNeighbour(t0, ca.Info())
}

func (m *mesh) deliver(from proto.PeerID, outs []Out) {
	type item struct {
		from proto.PeerID
		out  Out
	}
	q := []item{}
	for _, o := range outs {
		q = append(q, item{from, o})
	}
	for len(q) > 0 {
		it := q[0]
		q = q[1:]
		if it.out.Local {
			m.local[it.out.Search] = append(m.local[it.out.Search], it.out.Msg.(*proto.QueryHits).Hits...)
			continue
		}
		m.sent++
		to := m.cores[it.out.To]
		var next []Out
		switch msg := it.out.Msg.(type) {
		case *proto.Query:
			next = to.MeshQuery(t0, it.from, msg)
		case *proto.QueryHits:
			next = to.MeshHits(t0, it.from, msg)
		}
		for _, o := range next {
			q = append(q, item{it.out.To, o})
		}
	}
}

func (m *mesh) search(t *testing.T, sn int, asker proto.PeerID, id byte, text string, ttl uint8) []proto.Hit {
	t.Helper()
	c := m.cores[pid(sn)]
	qid := proto.QueryID{id}
	hits, outs, err := c.StartSearch(t0, asker, proto.Query{ID: qid, TTL: ttl, Text: text})
	if err != nil {
		t.Fatalf("search %q: %v", text, err)
	}
	m.deliver(pid(sn), outs)
	return append(hits, m.local[qid]...)
}

func attach(t *testing.T, c *Core, leafN int, files ...proto.FileEntry) proto.PeerID {
	t.Helper()
	info := peer(leafN)
	if _, _, err := c.AttachLeaf(t0, info, 0); err != nil {
		t.Fatal(err)
	}
	if r, err := c.AddShares(info.ID, files); err != nil || r.Added != len(files) {
		t.Fatalf("add shares: %+v %v", r, err)
	}
	return info.ID
}

func TestSearchAcrossLineOfSupernodes(t *testing.T) {
	m := newMesh(4, Config{})
	m.link(1, 2)
	m.link(2, 3)
	m.link(3, 4)
	asker := attach(t, m.cores[pid(1)], 101, entry(1, "mine.mp3"))
	attach(t, m.cores[pid(3)], 103, entry(3, "Hey Jude - The Beatles.mp3"))
	attach(t, m.cores[pid(4)], 104, entry(4, "Hey Jude (live).mp3"))

	hits := m.search(t, 1, asker, 1, "hey jude", 3)
	if len(hits) != 2 {
		t.Fatalf("TTL 3 from SN1: %d hits, want 2 (SN3 at 2 hops, SN4 at 3)", len(hits))
	}
	byHolder := map[proto.PeerID]uint8{}
	for _, h := range hits {
		byHolder[h.Holder.ID] = h.Hops
	}
	if byHolder[pid(103)] != 2 || byHolder[pid(104)] != 3 {
		t.Fatalf("hop counts %v, want leaf 103 at 2 and leaf 104 at 3", byHolder)
	}
	if hits := m.search(t, 1, asker, 2, "hey jude", 2); len(hits) != 1 {
		t.Fatalf("TTL 2: %d hits, want only the one 2 hops away", len(hits))
	}
	if hits := m.search(t, 1, asker, 3, "mine", 3); len(hits) != 0 {
		t.Fatalf("the asker's own file came back: %v", hits)
	}
}

func TestSearchByContentID(t *testing.T) {
	m := newMesh(2, Config{})
	m.link(1, 2)
	asker := attach(t, m.cores[pid(1)], 101)
	e := entry(42, "some file.bin")
	attach(t, m.cores[pid(1)], 102, e)
	attach(t, m.cores[pid(2)], 103, e)
	hits := m.search(t, 1, asker, 20, "cid:"+e.ContentID.String(), 3)
	if len(hits) != 2 {
		t.Fatalf("%d holders found by content ID, want 2", len(hits))
	}
	if _, _, err := m.cores[pid(1)].StartSearch(t0, asker, proto.Query{ID: proto.QueryID{21}, Text: "cid:../../etc/passwd"}); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Fatalf("path as content ID: %v", err)
	}
}

func TestDuplicateSuppressionInCycle(t *testing.T) {
	m := newMesh(4, Config{})
	m.link(1, 2)
	m.link(2, 3)
	m.link(3, 4)
	m.link(4, 1)
	m.link(1, 3)
	asker := attach(t, m.cores[pid(1)], 101)
	attach(t, m.cores[pid(3)], 103, entry(3, "loop.mp3"))
	hits := m.search(t, 1, asker, 9, "loop", 7)
	if len(hits) != 1 {
		t.Fatalf("%d hits in a cyclic mesh, want exactly 1 (duplicates suppressed)", len(hits))
	}
	dups := uint64(0)
	for _, c := range m.cores {
		dups += c.Stats().Drops[DropDuplicate]
	}
	if dups == 0 {
		t.Fatal("no duplicate was counted in a cyclic mesh")
	}
	if m.sent > 20 {
		t.Fatalf("%d messages for one query on 4 nodes: forwarding loop?", m.sent)
	}
}

func TestBadInputsAreDroppedAndCounted(t *testing.T) {
	m := newMesh(2, Config{LeafQueryRate: 1, LeafQueryBurst: 2})
	m.link(1, 2)
	c := m.cores[pid(1)]
	asker := attach(t, c, 101)

	// Hits for a query nobody asked.
	if outs := c.MeshHits(t0, pid(2), &proto.QueryHits{ID: proto.QueryID{77}}); len(outs) != 0 || c.Stats().Drops[DropUnknownQuery] != 1 {
		t.Fatalf("unknown-query hits: outs %v, drops %v", outs, c.Stats().Drops)
	}
	// Messages from a supernode that is not a neighbour.
	if outs := c.MeshQuery(t0, pid(9), &proto.Query{ID: proto.QueryID{5}, Text: "x y"}); outs != nil || c.Stats().Drops[DropNotNeighbour] != 1 {
		t.Fatal("query from a non-neighbour was not dropped")
	}
	// TTL above the maximum is clamped.
	outs := m.cores[pid(2)].MeshQuery(t0, pid(1), &proto.Query{ID: proto.QueryID{6}, TTL: 200, Text: "abc"})
	_ = outs
	if m.cores[pid(2)].Stats().Drops[DropTTLClamped] != 1 {
		t.Fatal("TTL 200 was not clamped")
	}
	// A query with no words.
	if _, _, err := c.StartSearch(t0, asker, proto.Query{ID: proto.QueryID{7}, Text: "size>10MB"}); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Fatalf("query with no words: %v", err)
	}
	// Rate limit: burst of 2 at 1/s; the first call above used a token.
	_, _, err1 := c.StartSearch(t0, asker, proto.Query{ID: proto.QueryID{8}, Text: "abc"})
	_, _, err2 := c.StartSearch(t0, asker, proto.Query{ID: proto.QueryID{10}, Text: "abc"})
	if err1 != nil || proto.CodeOf(err2) != proto.CodeRateLimited {
		t.Fatalf("rate limit: %v then %v, want ok then rate limited", err1, err2)
	}
	if _, _, err := c.StartSearch(t0.Add(2*time.Second), asker, proto.Query{ID: proto.QueryID{11}, Text: "abc"}); err != nil {
		t.Fatalf("after waiting, the leaf is served again: %v", err)
	}
	// Search from a peer that is not attached.
	if _, _, err := c.StartSearch(t0, pid(555), proto.Query{ID: proto.QueryID{12}, Text: "abc"}); proto.CodeOf(err) != proto.CodeRefused {
		t.Fatalf("search from a stranger: %v", err)
	}
	// Malformed and duplicate share entries.
	bad := []proto.FileEntry{entry(1, "ok.mp3"), entry(1, "ok.mp3"), entry(2, "bad\x00name"), entry(3, ""), {Name: "zero-id.mp3"}}
	r, err := c.AddShares(asker, bad)
	if err != nil || r.Added != 1 || r.Duplicate != 1 || r.Invalid != 3 || r.Problem() == "" {
		t.Fatalf("share batch result %+v %v", r, err)
	}
}

func TestShareCapPerLeaf(t *testing.T) {
	c := NewCore(Config{}, peer(1))
	id := attach(t, c, 100)
	var files []proto.FileEntry
	for i := range proto.MaxSharesPerLeaf + 10 {
		files = append(files, entry(i+1, fmt.Sprintf("file %d.mp3", i)))
	}
	r, _ := c.AddShares(id, files)
	if r.Added != proto.MaxSharesPerLeaf || r.OverCap != 10 {
		t.Fatalf("added %d, over cap %d", r.Added, r.OverCap)
	}
}

func TestFullSupernodeRedirectsAndDetachRemovesFiles(t *testing.T) {
	c := NewCore(Config{MaxLeaves: 1}, peer(1))
	c.Learn(t0, []proto.PeerInfo{{ID: pid(2), Addrs: []string{"x:1"}, Load: proto.Load{Capacity: 10}}})
	id := attach(t, c, 100, entry(1, "gone soon.mp3"))
	red, _, err := c.AttachLeaf(t0, peer(101), 0)
	if err != ErrFull || len(red) != 1 || red[0].ID != pid(2) {
		t.Fatalf("second leaf: %v %v, want ErrFull with a redirect to SN2", red, err)
	}
	if n := c.DetachLeaf(t0, id); n != 1 || c.IndexFiles() != 0 {
		t.Fatalf("detach removed %d files, %d left", n, c.IndexFiles())
	}
}

// A full supernode gives a leaf with no other supernode the slot of a leaf
// that has one (the one with the most, the latest of those), and refuses a
// leaf that has another.
func TestFullSupernodeReclaimsASpareSlot(t *testing.T) {
	c := NewCore(Config{MaxLeaves: 3}, peer(1))
	only := attach(t, c, 100, entry(1, "only here.mp3")) // says 0 others
	spare := peer(101)
	if _, _, err := c.AttachLeaf(t0, spare, 1); err != nil {
		t.Fatal(err)
	}
	later := peer(102)
	if _, _, err := c.AttachLeaf(t0.Add(time.Second), later, 1); err != nil {
		t.Fatal(err)
	}
	if _, ev, err := c.AttachLeaf(t0, peer(103), 1); err != ErrFull || !ev.IsZero() {
		t.Fatalf("a leaf with another supernode: evicted %v, %v; want ErrFull and no eviction", ev, err)
	}
	_, ev, err := c.AttachLeaf(t0, peer(104), 0)
	if err != nil || ev != later.ID {
		t.Fatalf("a leaf with none: evicted %v, %v; want %v (latest of those with a spare)", ev, err, later.ID.Short())
	}
	if c.IsLeaf(later.ID) || !c.IsLeaf(peer(104).ID) || len(c.Leaves()) != 3 {
		t.Fatalf("leaves after the reclaim: %v", c.Leaves())
	}
	// spare says it lost its other supernode: it keeps its slot now.
	if !c.SetLeafOthers(spare.ID, 0) {
		t.Fatal("SetLeafOthers: not attached")
	}
	if _, ev, err := c.AttachLeaf(t0, peer(105), 0); err != ErrFull || !ev.IsZero() {
		t.Fatalf("no leaf has a spare: evicted %v, %v; want ErrFull", ev, err)
	}
	if !c.IsLeaf(only) || !c.IsLeaf(spare.ID) {
		t.Fatal("a leaf with no other supernode lost its slot")
	}
}

func TestRoutesBoundedAndExpire(t *testing.T) {
	m := newMesh(2, Config{MaxRoutes: 10, RouteExpiry: time.Second})
	m.link(1, 2)
	c := m.cores[pid(2)]
	for i := range 25 {
		c.MeshQuery(t0, pid(1), &proto.Query{ID: proto.QueryID{byte(i), 1}, Text: "abc"})
	}
	if c.Routes() != 10 {
		t.Fatalf("%d routes remembered, want the cap of 10", c.Routes())
	}
	c.Tick(t0.Add(2 * time.Second))
	if c.Routes() != 0 {
		t.Fatalf("%d routes after expiry", c.Routes())
	}
}

func TestMeshBuildingAndSimultaneousDial(t *testing.T) {
	a := NewCore(Config{MeshDegree: 2}, peer(1))
	a.Learn(t0, []proto.PeerInfo{peer(2), peer(3), peer(4)})
	dial, _ := a.Tick(t0)
	if len(dial) != 2 {
		t.Fatalf("asked to dial %d, want the mesh degree 2", len(dial))
	}
	// While a is dialing dial[0], dial[0] dials a: the lower ID's dial wins.
	other := dial[0]
	err := a.AcceptNeighbour(t0, other)
	if a.self.ID != pid(1) || err == nil {
		t.Fatalf("a (lower ID) accepted the inbound link while dialing: %v", err)
	}
	if !a.DialDone(t0, other, nil) || !a.IsNeighbour(other.ID) {
		t.Fatal("a's own dial did not become a link")
	}
	a.DialDone(t0, dial[1], fmt.Errorf("refused"))
	a.NeighbourDown(t0, other.ID)
	dial, _ = a.Tick(t0.Add(time.Minute))
	if len(dial) == 0 {
		t.Fatal("a lost neighbour was not replaced")
	}
}
