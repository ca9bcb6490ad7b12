package promotion

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func peer(i int) proto.PeerID {
	var p proto.PeerID
	p[0], p[1] = byte(i>>8), byte(i)
	return p
}

func code(err error) proto.ErrorCode {
	if err == nil {
		return proto.CodeOK
	}
	return proto.CodeOf(err)
}

func TestProbeLimiter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := NewProbeLimiter(ProbeLimits{
		MaxProbeBytes: 100_000, PeerRate: 1_000, PeerBurst: 400_000,
		GlobalRate: 10_000, GlobalBurst: 1_000_000, MaxConcurrent: 3, MaxPeers: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only for peers the server serves.
	if _, err := l.Acquire(t0, peer(1), false, 1000); code(err) != proto.CodeRefused {
		t.Fatalf("unknown peer: %v, want refused", err)
	}
	// A request over the cap is cut to it; 0 means the cap.
	g, err := l.Acquire(t0, peer(1), true, 1<<40)
	if err != nil || g.Bytes != 100_000 {
		t.Fatalf("grant %v %v, want 100,000 bytes", g, err)
	}
	g.Done()
	g.Done() // twice is harmless
	g2, err := l.Acquire(t0, peer(1), true, 0)
	if err != nil || g2.Bytes != 100_000 {
		t.Fatalf("second grant %v %v", g2, err)
	}
	g2.Done()
	// Two probes (2 × 2 × 100 kB) emptied peer 1's bucket.
	if _, err := l.Acquire(t0, peer(1), true, 0); code(err) != proto.CodeRateLimited {
		t.Fatalf("third probe at once: %v, want rate limited", err)
	}
	// It refills at 1,000 B/s: a 200 kB probe (both ways) after 200 s.
	if _, err := l.Acquire(t0.Add(150*time.Second), peer(1), true, 0); code(err) != proto.CodeRateLimited {
		t.Fatal("refilled too early")
	}
	g3, err := l.Acquire(t0.Add(201*time.Second), peer(1), true, 0)
	if err != nil {
		t.Fatalf("after refill: %v", err)
	}
	g3.Done()

	// Concurrency: three at once, the fourth waits for a Done.
	t1 := t0.Add(time.Hour)
	var gs []*ProbeGrant
	for i := range 3 {
		g, err := l.Acquire(t1, peer(10+i), true, 1000)
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		gs = append(gs, g)
	}
	if _, err := l.Acquire(t1, peer(20), true, 1000); code(err) != proto.CodeRateLimited {
		t.Fatalf("fourth concurrent probe: %v, want rate limited", err)
	}
	gs[0].Done()
	g, err = l.Acquire(t1, peer(20), true, 1000)
	if err != nil {
		t.Fatalf("after a Done: %v", err)
	}
	g.Done()
	for _, g := range gs[1:] {
		g.Done()
	}

	// Global budget: 1 MB burst at 10 kB/s; five fresh peers' full probes
	// (200 kB each) spend it, the sixth is refused though its own bucket
	// is full; its bucket is not charged.
	t2 := t1.Add(24 * time.Hour)
	for i := range 5 {
		g, err := l.Acquire(t2, peer(100+i), true, 0)
		if err != nil {
			t.Fatalf("global: probe %d: %v", i, err)
		}
		g.Done()
	}
	if _, err := l.Acquire(t2, peer(200), true, 0); code(err) != proto.CodeRateLimited {
		t.Fatalf("over the global budget: %v", err)
	}
	if b := l.peers[peer(200)]; b == nil || b.tokens != 400_000 {
		t.Errorf("refused by the global cap but the peer was charged: %+v", b)
	}
	// Memory is bounded: MaxPeers 8, the full buckets swept to make room.
	if len(l.peers) > 8 {
		t.Errorf("%d peers remembered, cap 8", len(l.peers))
	}
}

// TestProbeLimiterPeerTable: when every remembered peer is still paying off
// a probe and the table is full, a new peer is refused rather than the
// table growing.
func TestProbeLimiterPeerTable(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := NewProbeLimiter(ProbeLimits{MaxPeers: 2, GlobalBurst: 1 << 30, GlobalRate: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		g, err := l.Acquire(t0, peer(i), true, 0)
		if err != nil {
			t.Fatal(err)
		}
		g.Done()
	}
	if _, err := l.Acquire(t0, peer(9), true, 0); code(err) != proto.CodeRateLimited {
		t.Fatalf("third peer with a full table: %v", err)
	}
	// Once their buckets refill they are forgotten and room is made.
	if g, err := l.Acquire(t0.Add(24*time.Hour), peer(9), true, 0); err != nil {
		t.Fatalf("after refill: %v", err)
	} else {
		g.Done()
	}
}

func TestProbeLimitsValidate(t *testing.T) {
	for _, c := range []ProbeLimits{
		{PeerRate: -1},
		{MaxProbeBytes: 1 << 20, PeerBurst: 1 << 20}, // cannot hold one probe both ways
		{MaxConcurrent: -1},
	} {
		if _, err := NewProbeLimiter(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestRequestLimiter: a stream of promotion requests from one address is
// limited to the burst then the rate; other addresses are not affected; an
// IPv6 /64 is one address; ports do not matter.
func TestRequestLimiter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := NewRequestLimiter(RequestLimits{Rate: 1, Burst: 3, MaxAddrs: 100})
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i := range 100 {
		// 100 requests over 10 s from one host, each from a new port.
		if l.Allow(t0.Add(time.Duration(i)*100*time.Millisecond), fmt.Sprintf("203.0.113.7:%d", 1000+i)) {
			allowed++
		}
	}
	// Burst 3, then 1/s over ~9.9 s.
	if allowed < 12 || allowed > 13 {
		t.Errorf("allowed %d of 100 requests in 10 s, want 3 + 1/s ≈ 12", allowed)
	}
	if !l.Allow(t0.Add(10*time.Second), "198.51.100.1:7400") {
		t.Error("another address limited")
	}
	for i := range 3 {
		if !l.Allow(t0, fmt.Sprintf("[2001:db8:1:2::%x]:7400", i+1)) {
			t.Fatalf("IPv6 request %d refused within the burst", i)
		}
	}
	if l.Allow(t0, "[2001:db8:1:2:ffff::1]:9") {
		t.Error("a fourth address of the same /64 was not limited")
	}
	if !l.Allow(t0, "[2001:db8:1:3::1]:9") {
		t.Error("another /64 was limited")
	}
	if !l.Allow(t0, "[::ffff:192.0.2.1]:1") || !l.Allow(t0, "192.0.2.1") || !l.Allow(t0, "192.0.2.1:2") || l.Allow(t0, "192.0.2.1:3") {
		t.Error("an IPv4-mapped address is not the same IPv4 address")
	}
}

func TestRequestLimiterBounded(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := NewRequestLimiter(RequestLimits{Rate: 0.01, Burst: 1, MaxAddrs: 50})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		l.Allow(t0.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("10.0.%d.%d:1", i/256, i%256))
	}
	if len(l.addrs) > 50 {
		t.Fatalf("%d addresses remembered, cap 50", len(l.addrs))
	}
	// The most recent address is still remembered (and limited).
	if l.Allow(t0.Add(time.Second), "10.0.3.231:1") {
		t.Error("the latest address was forgotten")
	}
	// Unparseable addresses share one bucket.
	if !l.Allow(t0, "not an address") || l.Allow(t0, "neither is this") {
		t.Error("garbage addresses do not share a bucket")
	}
}

func TestRequestLimitsValidate(t *testing.T) {
	for _, c := range []RequestLimits{{Rate: -1}, {IPv6Prefix: 129}, {Burst: -2}} {
		if _, err := NewRequestLimiter(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
