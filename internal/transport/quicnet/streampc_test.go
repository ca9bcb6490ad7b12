package quicnet

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/identity"
)

// relayedPair runs a transport, each with a new identity, on each end of
// a stream (pa, pb: the two peers' streams to whatever carries them).
func relayedPair(t *testing.T, pa, pb net.Conn) (*Transport, *Transport) {
	t.Helper()
	mk := func(rw net.Conn, local, remote string) *Transport {
		id, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		pc := NewStreamPacketConn(rw, RelayAddr{local}, RelayAddr{remote}, nil)
		tr, err := ListenPacketConn(pc, id, Config{Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	return mk(pa, "a", "b"), mk(pb, "b", "a")
}

// Two transports whose packets travel over one in-memory stream run
// their QUIC and TLS end to end, as two relayed peers do.
func TestTransportOverStreamPacketConn(t *testing.T) {
	pa, pb := net.Pipe()
	a, b := relayedPair(t, pa, pb)
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

// relayTap is a relay in the middle of two StreamPacketConns: it copies
// packets both ways, keeps every byte it saw, and flips one byte of every
// tamperEvery-th packet.
func relayTap(t *testing.T, a, b net.Conn, tamperEvery int) (seenSoFar func() []byte) {
	seen := &bytes.Buffer{}
	var mu sync.Mutex
	pipe := func(dst, src net.Conn) {
		var hdr [2]byte
		for k := 1; ; k++ {
			if _, err := io.ReadFull(src, hdr[:]); err != nil {
				return
			}
			p := make([]byte, binary.BigEndian.Uint16(hdr[:]))
			if _, err := io.ReadFull(src, p); err != nil {
				return
			}
			mu.Lock()
			seen.Write(p)
			mu.Unlock()
			if k%tamperEvery == 0 && len(p) > 0 {
				p[len(p)/2] ^= 0xff
			}
			if _, err := dst.Write(append(hdr[:], p...)); err != nil {
				return
			}
		}
	}
	go pipe(b, a)
	go pipe(a, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	return func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(seen.Bytes())
	}
}

// What a relay carries is the peers' own QUIC: it cannot read the bytes,
// and bytes it alters are refused by the receiver (and sent again), so the
// transfer still arrives intact.
func TestRelayedBytesAreEncryptedAndAuthenticated(t *testing.T) {
	pa, ra := net.Pipe()
	rb, pb := net.Pipe()
	seen := relayTap(t, ra, rb, 7)
	a, b := relayedPair(t, pa, pb)
	secret := bytes.Repeat([]byte("the relay must not read this line. "), 3000)
	got := make(chan []byte, 1)
	go func() {
		c, err := b.Accept(ctx(t))
		if err != nil {
			got <- nil
			return
		}
		s, err := c.AcceptStream(ctx(t))
		if err != nil {
			got <- nil
			return
		}
		all, _ := io.ReadAll(s)
		got <- all
	}()
	c, err := a.DialAddr(ctx(t), RelayAddr{"b"}, b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.OpenStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(secret); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if r := <-got; !bytes.Equal(r, secret) {
		t.Fatalf("receiver got %d bytes, want the %d sent, intact", len(r), len(secret))
	}
	carried := seen()
	if bytes.Contains(carried, []byte("must not read")) {
		t.Fatal("the relay saw plaintext")
	}
	if len(carried) < len(secret) {
		t.Fatalf("the relay carried %d bytes, fewer than the %d sent: the test did not go through it", len(carried), len(secret))
	}
}
