package memnet

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pid(b byte) proto.PeerID { return proto.PeerID{b} }

func setup(t *testing.T, n *Network) (a, b *Transport, ca, cb transport.Conn) {
	t.Helper()
	a, _ = n.Listen("", pid(1))
	b, _ = n.Listen("", pid(2))
	t.Cleanup(func() { a.Close(); b.Close() })
	got := make(chan transport.Conn, 1)
	go func() { c, _ := b.Accept(context.Background()); got <- c }()
	ca, err := a.Dial(context.Background(), b.Addr().String(), pid(2))
	if err != nil {
		t.Fatal(err)
	}
	cb = <-got
	if ca.RemotePeer() != pid(2) || cb.RemotePeer() != pid(1) {
		t.Fatal("peer IDs not carried")
	}
	return
}

func TestStreamCarriesBytesInOrder(t *testing.T) {
	n := NewNetwork(1)
	_, _, ca, cb := setup(t, n)
	want := bytes.Repeat([]byte("strata"), 500_000) // 3 MB: more than the flow-control buffer
	go func() {
		s, _ := ca.OpenStream(context.Background())
		_, _ = s.Write(want)
		_ = s.Close()
	}()
	s, err := cb.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, err %v; want %d bytes", len(got), err, len(want))
	}
}

func TestLatencyAndSeededLoss(t *testing.T) {
	delays := func(seed int64) []time.Duration {
		n := NewNetwork(seed)
		n.SetDefaultLink(Link{Latency: 2 * time.Millisecond, Loss: 0.5})
		var out []time.Duration
		for range 20 {
			out = append(out, n.delay("a", "b"))
		}
		return out
	}
	d1, d2 := delays(7), delays(7)
	late := 0
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatal("same seed gave different delays")
		}
		if d1[i] < 2*time.Millisecond {
			t.Fatalf("delay %v under the link latency", d1[i])
		}
		if d1[i] > 2*time.Millisecond {
			late++
		}
	}
	if late == 0 || late == len(d1) {
		t.Fatalf("%d of %d writes retransmitted at 50%% loss", late, len(d1))
	}

	n := NewNetwork(1)
	n.SetDefaultLink(Link{Latency: 30 * time.Millisecond})
	_, _, ca, cb := setup(t, n)
	start := time.Now()
	go func() {
		s, _ := ca.OpenStream(context.Background())
		_, _ = s.Write([]byte("x"))
		_ = s.Close()
	}()
	s, _ := cb.AcceptStream(context.Background())
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Fatalf("one write took %v, want at least the 30 ms link latency", took)
	}
}

func TestPartitionClosesAndRefuses(t *testing.T) {
	n := NewNetwork(1)
	a, b, ca, _ := setup(t, n)
	n.Partition([]string{a.addr}, []string{b.addr})
	select {
	case <-ca.Context().Done():
	case <-time.After(time.Second):
		t.Fatal("connection across the partition still open")
	}
	if _, err := ca.OpenStream(context.Background()); proto.CodeOf(err) != proto.CodeTimeout {
		t.Fatalf("open after partition: %v", err)
	}
	if _, err := a.Dial(context.Background(), b.addr, proto.PeerID{}); proto.CodeOf(err) != proto.CodeTimeout {
		t.Fatalf("dial across partition: %v", err)
	}
	n.Heal()
	go func() { _, _ = b.Accept(context.Background()) }()
	if _, err := a.Dial(context.Background(), b.addr, proto.PeerID{}); err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
}

func TestPeerIDMismatchAndResetCodes(t *testing.T) {
	n := NewNetwork(1)
	a, b, ca, cb := setup(t, n)
	if _, err := a.Dial(context.Background(), b.addr, pid(9)); proto.CodeOf(err) != proto.CodePeerIDMismatch {
		t.Fatalf("wrong expected peer: %v", err)
	}
	s, _ := ca.OpenStream(context.Background())
	rs, _ := cb.AcceptStream(context.Background())
	rs.CancelRead(proto.CodeRateLimited)
	if _, err := s.Write([]byte("x")); proto.CodeOf(err) != proto.CodeRateLimited {
		t.Fatalf("write after peer stopped reading: %v", err)
	}
	rs.CancelWrite(proto.CodeFull)
	if _, err := s.Read(make([]byte, 1)); proto.CodeOf(err) != proto.CodeFull {
		t.Fatalf("read after peer reset: %v", err)
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
}
