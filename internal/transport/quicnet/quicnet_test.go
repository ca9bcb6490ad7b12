package quicnet

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T, cfg Config) *Transport {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = zaptest.NewLogger(t)
	tr, err := Listen("127.0.0.1:0", id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestDialVerifiesBothPeerIDs(t *testing.T) {
	a, b := listen(t, Config{}), listen(t, Config{})
	accepted := make(chan proto.PeerID, 1)
	go func() {
		c, err := b.Accept(context.Background())
		if err == nil {
			accepted <- c.RemotePeer()
		}
	}()
	c, err := a.Dial(ctx(t), b.Addr().String(), b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	if c.RemotePeer() != b.LocalPeer() {
		t.Fatalf("dialer sees %s, want %s", c.RemotePeer(), b.LocalPeer())
	}
	if got := <-accepted; got != a.LocalPeer() {
		t.Fatalf("acceptor sees %s, want %s", got, a.LocalPeer())
	}
}

func TestDialWrongPeerIDFails(t *testing.T) {
	a, b := listen(t, Config{}), listen(t, Config{})
	go func() {
		for {
			c, err := b.Accept(context.Background())
			if err != nil {
				return
			}
			go func() { _, _ = c.AcceptStream(context.Background()) }()
		}
	}()
	other, _ := identity.Generate()
	_, err := a.Dial(ctx(t), b.Addr().String(), other.PeerID())
	if proto.CodeOf(err) != proto.CodePeerIDMismatch {
		t.Fatalf("got %v, want a peer ID mismatch error", err)
	}
	if !strings.Contains(err.Error(), b.LocalPeer().String()) || !strings.Contains(err.Error(), other.PeerID().String()) {
		t.Fatalf("error %q should name both the expected and the actual peer ID", err)
	}
	// The listener is unharmed: a correct dial still works.
	if _, err := a.Dial(ctx(t), b.Addr().String(), b.LocalPeer()); err != nil {
		t.Fatalf("dial after a mismatch: %v", err)
	}
}

func TestStreamResetCarriesCode(t *testing.T) {
	a, bb := listen(t, Config{}), listen(t, Config{})
	go func() {
		c, err := bb.Accept(context.Background())
		if err != nil {
			return
		}
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		s.CancelWrite(proto.CodeRateLimited)
		s.CancelRead(proto.CodeRateLimited)
	}()
	c, err := a.Dial(ctx(t), bb.Addr().String(), proto.PeerID{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.OpenStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("hi"))
	_, err = io.ReadAll(s)
	if proto.CodeOf(err) != proto.CodeRateLimited {
		t.Fatalf("got %v, want the peer's rate-limited code", err)
	}
}

// blackhole forwards UDP between a client and a server until cut.
type blackhole struct {
	pc  net.PacketConn
	cut atomic.Bool
}

func newBlackhole(t *testing.T, server net.Addr) *blackhole {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bh := &blackhole{pc: pc}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		var client net.Addr
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if bh.cut.Load() {
				continue
			}
			if from.String() == server.String() {
				if client != nil {
					_, _ = pc.WriteTo(buf[:n], client)
				}
			} else {
				client = from
				_, _ = pc.WriteTo(buf[:n], server)
			}
		}
	}()
	return bh
}

func TestDeadPeerNoticedInAboutTwoSeconds(t *testing.T) {
	a, b := listen(t, Config{}), listen(t, Config{})
	go func() {
		for {
			if _, err := b.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	bh := newBlackhole(t, b.Addr())
	c, err := a.Dial(ctx(t), bh.pc.LocalAddr().String(), b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bh.cut.Store(true)
	select {
	case <-c.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("blackholed peer not noticed within 10 s")
	}
	took := time.Since(start)
	t.Logf("blackholed peer noticed after %v", took)
	if took > 4*time.Second {
		t.Fatalf("blackholed peer noticed after %v, want about 2 s", took)
	}
	var pe *proto.Error
	if _, err := c.OpenStream(context.Background()); !errors.As(err, &pe) || pe.Code != proto.CodeTimeout {
		t.Fatalf("after idle timeout: %v, want a timeout error", err)
	}
}
