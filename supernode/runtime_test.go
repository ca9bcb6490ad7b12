package supernode

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func hello(role proto.Role, addr string) proto.Hello {
	return proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Role: role, ListenAddrs: []string{addr}}
}

// host serves one supernode Runtime on a transport, as the node does.
type host struct {
	tr transport.Transport
	rt *Runtime
}

func newHost(t *testing.T, ctx context.Context, n *memnet.Network, id int, cfg Config) *host {
	t.Helper()
	tr, err := n.Listen("", pid(id))
	if err != nil {
		t.Fatal(err)
	}
	self := proto.PeerInfo{ID: pid(id), Addrs: []string{tr.Addr().String()}}
	h := &host{tr: tr}
	h.rt = NewRuntime(RuntimeConfig{Core: cfg, Logger: zaptest.NewLogger(t), TickEvery: 20 * time.Millisecond, SearchLifetime: 2 * time.Second},
		tr, self, func() proto.Hello { return hello(proto.RoleSupernode, tr.Addr().String()) })
	h.rt.Start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				s, err := session.Server(ctx, c, hello(proto.RoleSupernode, tr.Addr().String()))
				if err != nil {
					return
				}
				_ = s.Serve(ctx, zaptest.NewLogger(t), 0, func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) {
					if !h.rt.HandleStream(ctx, s, st, first) {
						st.Fail(proto.Errorf(proto.CodeProtocol, "unexpected"))
					}
				})
			}()
		}
	}()
	t.Cleanup(func() { h.rt.Close(); tr.Close(); <-done })
	return h
}

// testLeaf is a leaf session on a supernode.
type testLeaf struct {
	sess *session.Session
	st   *session.Stream
}

func newLeaf(t *testing.T, ctx context.Context, n *memnet.Network, id int, sn *host, files ...proto.FileEntry) *testLeaf {
	t.Helper()
	tr, err := n.Listen("", pid(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	c, err := tr.Dial(ctx, sn.tr.Addr().String(), sn.tr.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Client(ctx, c, hello(proto.RoleLeaf, tr.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&proto.Attach{Files: uint32(len(files))}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || !m.(*proto.AttachReply).Accepted {
		t.Fatalf("attach: %v %v", m, err)
	}
	if len(files) > 0 {
		if err := st.Send(&proto.ShareAdd{Entries: files}); err != nil {
			t.Fatal(err)
		}
	}
	// A Ping after the shares comes back once they are indexed.
	if err := st.Send(&proto.Ping{Nonce: 1}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.Type() != proto.TypePong {
		t.Fatalf("ping after shares: %v %v", m, err)
	}
	return &testLeaf{sess: s, st: st}
}

// search sends a query and collects hits until the supernode ends the
// stream or timeout passes.
func (l *testLeaf) search(ctx context.Context, text string, timeout time.Duration) ([]proto.Hit, error) {
	hits, _, err := l.searchTimed(ctx, text, timeout)
	return hits, err
}

// searchTimed also returns how long the first hit took.
func (l *testLeaf) searchTimed(ctx context.Context, text string, timeout time.Duration) ([]proto.Hit, time.Duration, error) {
	start := time.Now()
	var first time.Duration
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := l.sess.Open(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = st.Close(); st.CancelRead(proto.CodeOK) }()
	stop := context.AfterFunc(ctx, func() { st.CancelRead(proto.CodeOK) })
	defer stop()
	q := proto.Query{Text: text, MaxResults: 100}
	_, _ = rand.Read(q.ID[:])
	if err := st.Send(&q); err != nil {
		return nil, 0, err
	}
	var hits []proto.Hit
	for {
		m, err := st.Recv()
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return hits, first, nil
			}
			return hits, first, err
		}
		switch m := m.(type) {
		case *proto.QueryHits:
			if len(hits) == 0 {
				first = time.Since(start)
			}
			hits = append(hits, m.Hits...)
		case *proto.ErrorMsg:
			return hits, first, &proto.Error{Code: m.Code, Msg: m.Message}
		}
	}
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
	a := newHost(t, ctx, n, 1, Config{MeshDegree: 1})
	b := newHost(t, ctx, n, 2, Config{MeshDegree: 1})
	b.rt.With(func(c *Core) { c.Learn(time.Now(), []proto.PeerInfo{a.rt.core.Info()}) })
	waitFor(t, 5*time.Second, "mesh link did not come up", func() bool {
		up := false
		a.rt.With(func(c *Core) { up = c.IsNeighbour(pid(2)) })
		return up
	})
	asker := newLeaf(t, ctx, n, 101, a)
	newLeaf(t, ctx, n, 102, b, entry(7, "far away song.mp3"))
	hits, err := asker.search(ctx, "far away", 500*time.Millisecond)
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
	sn := newHost(t, ctx, n, 1, Config{LeafQueryRate: 5, LeafQueryBurst: 5})
	flooder := newLeaf(t, ctx, n, 101, sn)
	good := newLeaf(t, ctx, n, 102, sn)
	newLeaf(t, ctx, n, 103, sn, entry(1, "needle in haystack.mp3"))

	timeSearch := func() time.Duration {
		hits, first, err := good.searchTimed(ctx, "needle", 200*time.Millisecond)
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
			_, err := flooder.search(ctx, fmt.Sprintf("flood %d", i), 50*time.Millisecond)
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
	sn.rt.With(func(c *Core) { drops = c.Stats().Drops[DropRateLimited] })
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
	if _, err := good.search(ctx, string(long), time.Second); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Errorf("300-byte query: %v, want bad request", err)
	}
}
