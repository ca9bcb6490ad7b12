package quicnet

import (
	"io"
	"net"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/identity"
)

// Two transports whose packets travel over one in-memory stream run
// their QUIC and TLS end to end, as two relayed peers do.
func TestTransportOverStreamPacketConn(t *testing.T) {
	pa, pb := net.Pipe()
	ca := NewStreamPacketConn(pa, RelayAddr{"a"}, RelayAddr{"b"}, nil)
	cb := NewStreamPacketConn(pb, RelayAddr{"b"}, RelayAddr{"a"}, nil)
	mk := func(pc net.PacketConn) *Transport {
		id, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := ListenPacketConn(pc, id, Config{Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a, b := mk(ca), mk(cb)
	served := make(chan error, 1)
	go func() {
		c, err := b.Accept(ctx(t))
		if err != nil {
			served <- err
			return
		}
		s, err := c.AcceptStream(ctx(t))
		if err != nil {
			served <- err
			return
		}
		_, err = io.Copy(s, s)
		_ = s.Close()
		served <- err
	}()
	c, err := a.DialAddr(ctx(t), RelayAddr{"b"}, b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	if c.RemotePeer() != b.LocalPeer() {
		t.Fatalf("dialer sees %s, want %s", c.RemotePeer(), b.LocalPeer())
	}
	s, err := c.OpenStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 200<<10)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	go func() { _, _ = s.Write(msg); _ = s.Close() }()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
