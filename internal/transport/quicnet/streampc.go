package quicnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// RelayAddr is the address of the far end of a relayed path: every packet
// of a StreamPacketConn comes from it and goes to it.
type RelayAddr struct{ Via string }

func (RelayAddr) Network() string  { return "strata-relay" }
func (a RelayAddr) String() string { return "relay:" + a.Via }

// StreamPacketConn is a net.PacketConn whose packets travel over one
// reliable stream (to a relaying supernode), each framed as a 2-byte
// big-endian length and the bytes. Run a Transport on it with
// ListenPacketConn: the two peers then speak their own QUIC and TLS end to
// end, and whatever carries the stream sees only ciphertext.
type StreamPacketConn struct {
	rw     io.ReadWriteCloser
	local  net.Addr
	remote net.Addr

	rmu  sync.Mutex
	rhdr [2]byte
	wmu  sync.Mutex
	wbuf []byte

	closed  chan struct{}
	once    sync.Once
	onClose func()
	errMu   sync.Mutex
	err     error // the first read error
}

var _ net.PacketConn = (*StreamPacketConn)(nil)

// NewStreamPacketConn frames packets over rw; remote is the address
// packets appear to come from. onClose (optional) runs once on Close, to
// end the stream (for example CancelRead and CancelWrite).
func NewStreamPacketConn(rw io.ReadWriteCloser, local, remote net.Addr, onClose func()) *StreamPacketConn {
	return &StreamPacketConn{rw: rw, local: local, remote: remote, closed: make(chan struct{}), onClose: onClose}
}

// ReadFrom reads the next packet. Packets longer than p are cut to it.
func (c *StreamPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if _, err := io.ReadFull(c.rw, c.rhdr[:]); err != nil {
		return 0, nil, c.readErr(err)
	}
	n := int(binary.BigEndian.Uint16(c.rhdr[:]))
	if n > proto.MaxRelayPacket {
		return 0, nil, fmt.Errorf("relayed packet of %d bytes, over the cap of %d", n, proto.MaxRelayPacket)
	}
	k := min(n, len(p))
	if _, err := io.ReadFull(c.rw, p[:k]); err != nil {
		return 0, nil, c.readErr(err)
	}
	if k < n {
		if _, err := io.CopyN(io.Discard, c.rw, int64(n-k)); err != nil {
			return 0, nil, c.readErr(err)
		}
	}
	return k, c.remote, nil
}

func (c *StreamPacketConn) readErr(err error) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
	return err
}

// Err is why the stream stopped delivering packets (nil while it runs or
// when it was closed by us): e.g. the relay ending the session.
func (c *StreamPacketConn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// WriteTo sends p to the far end (addr is ignored: there is one).
func (c *StreamPacketConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	if len(p) > proto.MaxRelayPacket {
		return 0, fmt.Errorf("packet of %d bytes is over the relay's cap of %d", len(p), proto.MaxRelayPacket)
	}
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = binary.BigEndian.AppendUint16(c.wbuf[:0], uint16(len(p)))
	c.wbuf = append(c.wbuf, p...)
	if _, err := c.rw.Write(c.wbuf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the stream; pending reads return net.ErrClosed.
func (c *StreamPacketConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		if c.onClose != nil {
			c.onClose()
		}
		_ = c.rw.Close()
	})
	return nil
}

// Done is closed when the conn is closed.
func (c *StreamPacketConn) Done() <-chan struct{} { return c.closed }

func (c *StreamPacketConn) LocalAddr() net.Addr { return c.local }

type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

func (c *StreamPacketConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *StreamPacketConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.rw.(deadliner); ok {
		return d.SetReadDeadline(t)
	}
	return os.ErrNoDeadline
}

func (c *StreamPacketConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.rw.(deadliner); ok {
		return d.SetWriteDeadline(t)
	}
	return os.ErrNoDeadline
}
