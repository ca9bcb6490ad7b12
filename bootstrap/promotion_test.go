package bootstrap

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

// answerHellos serves the hello on every connection tr accepts (what a
// node does), until tr closes.
func answerHellos(t *testing.T, tr *memnet.Transport) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tr.Accept(context.Background())
			if err != nil {
				return
			}
			h := helloAs(proto.RoleLeaf)
			h.MinVersion, h.MaxVersion = proto.MinVersion, proto.MaxVersion
			if _, err := session.Server(context.Background(), c, h); err == nil {
				<-c.Context().Done()
			}
		}
	}()
	t.Cleanup(func() { tr.Close(); wg.Wait() })
}

func noPace(ctx context.Context, n int) error { return ctx.Err() }

// waitFor polls cond (each call a real round trip) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCheckInDialBackProbeAndPlan: a node that checks in is dialled back
// (reachable), is probed, and, as the only candidate of an empty network,
// is asked to step up; a node whose advertised address leads nowhere is
// found unreachable and never asked.
func TestCheckInDialBackProbeAndPlan(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{Heartbeat: 20 * time.Millisecond, Expiry: 100 * time.Millisecond,
		Promotion: promotion.Config{LeavesPerSupernode: 2}})
	good, goodTr := memClient(t, nw, 1, proto.RoleLeaf)
	answerHellos(t, goodTr)
	badTr, err := nw.Listen("", pid(2))
	if err != nil {
		t.Fatal(err)
	}
	bad := NewClient(badTr, helloAs(proto.RoleLeaf, "mem:nowhere"), nil)
	t.Cleanup(func() { bad.Close(); badTr.Close() })

	checkIn := func(c *Client) *proto.CheckInReply {
		t.Helper()
		r, _, err := c.CheckIn(ctx, []string{b.addr}, &proto.CheckIn{Role: proto.RoleLeaf, Auto: true})
		if err != nil {
			t.Fatalf("check-in: %v", err)
		}
		return r
	}
	if r := checkIn(good); r.CheckInMillis != uint32(DefaultConfig().CheckIn/time.Millisecond) {
		t.Fatalf("check-in interval %d ms, want the default", r.CheckInMillis)
	}
	checkIn(bad)
	waitFor(t, "the good node was not found reachable", func() bool { return checkIn(good).Reachable == proto.ReachPublic })
	waitFor(t, "the bad node was not found unreachable", func() bool { return checkIn(bad).Reachable == proto.ReachUnreachable })

	// Not probed yet: not a candidate, so nobody is asked.
	if r := checkIn(good); r.Ask != 0 {
		t.Fatalf("asked %d before any probe", r.Ask)
	}
	for _, c := range []*Client{good, bad} {
		up, down, err := c.Probe(ctx, b.addr, 64<<10, noPace)
		if err != nil || up <= 0 || down <= 0 {
			t.Fatalf("probe: up %v down %v, %v", up, down, err)
		}
	}
	waitFor(t, "the reachable candidate was not asked to step up", func() bool {
		r := checkIn(good)
		return r.Ask == uint8(promotion.AskStepUp) && r.AcceptYoung && r.Need == 1 && r.Leaves == 2
	})
	if r := checkIn(bad); r.Ask != 0 {
		t.Errorf("the unreachable node was asked %d", r.Ask)
	}
	// The server records a probe once the node said ProbeDone, which the
	// node does not wait for.
	waitFor(t, "the status does not show both nodes with their probe rates", func() bool {
		st := b.srv.Status()
		if st.Promotion == nil || len(st.Promotion.Nodes) != 2 || st.Promotion.LeavesPerSupernode != 2 {
			t.Fatalf("status: %+v", st.Promotion)
		}
		for _, n := range st.Promotion.Nodes {
			if n.UpBps <= 0 || n.DownBps <= 0 {
				return false
			}
		}
		return true
	})

	// The candidate steps up: registered as a supernode, it checks in as
	// one; when it checks in as a leaf again it is deregistered at once.
	sn := NewClient(goodTr, helloAs(proto.RoleSupernode, goodTr.Addr().String()), nil)
	t.Cleanup(func() { sn.Close() })
	if _, err := sn.Register(ctx, []string{b.addr}, nil, proto.Load{Capacity: 10}); err != nil {
		t.Fatal(err)
	}
	if n := b.srv.Status().Totals.Supernodes; n != 1 {
		t.Fatalf("%d supernodes after the registration", n)
	}
	checkIn(good)
	if n := b.srv.Status().Totals.Supernodes; n != 0 {
		t.Fatalf("%d supernodes after the supernode checked in as a leaf, want 0", n)
	}
}

// TestProbeOnlyForKnownNodes: a node that never checked in or registered
// gets no probe, and a probe is cut to the server's cap whatever it asks.
func TestProbeOnlyForKnownNodes(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{Probes: promotion.ProbeLimits{MaxProbeBytes: 32 << 10}})
	sess := rawSession(t, ctx, nw, 1, b.addr, proto.RoleLeaf)
	probe := func() (*proto.ProbeGrant, error) {
		st, err := sess.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer st.CancelRead(proto.CodeOK)
		if err := st.Send(&proto.Probe{Bytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *proto.ProbeGrant:
			return m, nil
		case *proto.ErrorMsg:
			return nil, &proto.Error{Code: m.Code, Msg: m.Message}
		}
		return nil, fmt.Errorf("answered %s", m.Type())
	}
	if _, err := probe(); proto.CodeOf(err) != proto.CodeRefused {
		t.Fatalf("probe from a stranger: %v, want refused", err)
	}
	if _, err := sess.Request(ctx, &proto.CheckIn{Role: proto.RoleLeaf, Auto: true}); err != nil {
		t.Fatal(err)
	}
	g, err := probe()
	if err != nil || g.Bytes != 32<<10 {
		t.Fatalf("probe of 1 GiB after check-in: grant %+v, %v; want the 32 KiB cap", g, err)
	}

	// Bytes that do not repeat the grant's nonce (sent before the grant,
	// say) are refused.
	st, err := sess.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.CancelRead(proto.CodeOK)
	if err := st.Send(&proto.Probe{Bytes: 1024}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*proto.ProbeGrant); !ok {
		t.Fatalf("answered %s, want a grant", m.Type())
	}
	if _, err := st.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	m, err = st.Recv()
	if e, ok := m.(*proto.ErrorMsg); err != nil || !ok || e.Code != proto.CodeBadRequest {
		t.Fatalf("probe bytes without the nonce: %v %v, want a bad request", m, err)
	}
}

// TestCheckInsRateLimitedPerAddress: new nodes checking in from one address
// are limited (memnet addresses do not parse as IPs, so they share a
// bucket).
func TestCheckInsRateLimitedPerAddress(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{Requests: promotion.RequestLimits{Rate: 0.001, Burst: 2}})
	var errs []error
	for i := range 3 {
		c, _ := memClient(t, nw, 10+i, proto.RoleLeaf)
		_, _, err := c.CheckIn(ctx, []string{b.addr}, &proto.CheckIn{Role: proto.RoleLeaf, Auto: true})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || proto.CodeOf(errs[2]) != proto.CodeRateLimited {
		t.Fatalf("errors %v, want nil, nil, rate limited", errs)
	}
}

func TestCheckInBadRole(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	c, _ := memClient(t, nw, 1, proto.RoleLeaf)
	_, _, err := c.CheckIn(ctx, []string{b.addr}, &proto.CheckIn{Role: proto.RoleBootstrap})
	if proto.CodeOf(err) != proto.CodeBadRequest {
		t.Fatalf("check-in as a bootstrap: %v, want bad request", err)
	}
}

func TestBlendRate(t *testing.T) {
	for _, c := range []struct{ old, sample, want float64 }{
		{0, 100, 100}, {100, 300, 300}, {300, 100, 200}, {200, 200, 200},
	} {
		if got := blendRate(c.old, c.sample); got != c.want {
			t.Errorf("blendRate(%v, %v) = %v, want %v", c.old, c.sample, got, c.want)
		}
	}
}
