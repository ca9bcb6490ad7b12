// Package transport is the small interface every Strata connection goes
// through: dial, accept, open and accept streams, the verified peer ID, the
// remote address, and close with a proto.ErrorCode. quicnet implements it
// over QUIC for real nodes; memnet implements it in memory for unit tests and
// the simulator.
package transport

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// Stream is one bidirectional stream. Close ends the write direction only;
// the reader must read to EOF or call CancelRead, or the stream's slot is not
// returned (see ../shared/FACTS.md).
type Stream interface {
	io.ReadWriteCloser
	CancelRead(code proto.ErrorCode)
	CancelWrite(code proto.ErrorCode)
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Conn is an authenticated connection to one peer.
type Conn interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	LocalPeer() proto.PeerID
	RemotePeer() proto.PeerID
	RemoteAddr() net.Addr
	CloseWithError(code proto.ErrorCode, reason string) error
	// Context is done when the connection is closed, by either end.
	Context() context.Context
}

// Transport listens and dials from one local address.
type Transport interface {
	// Dial connects to addr. When expect is non-zero the dial fails with a
	// *proto.Error of code CodePeerIDMismatch unless the peer proves it is
	// expect.
	Dial(ctx context.Context, addr string, expect proto.PeerID) (Conn, error)
	// Accept returns the next incoming connection, already authenticated.
	Accept(ctx context.Context) (Conn, error)
	Addr() net.Addr
	LocalPeer() proto.PeerID
	// Close closes every connection and the listener.
	Close() error
}

// OneShot sends msg on a new stream, closes its write side, and reads the
// single reply. It is the request/response pattern most control messages use.
func OneShot(ctx context.Context, c Conn, msg proto.Message) (proto.Message, error) {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := proto.NewWriter(s).WriteMsg(msg); err != nil {
		s.CancelRead(proto.CodeInternal)
		return nil, err
	}
	_ = s.Close()
	reply, err := proto.NewReader(s, 0).ReadMsg()
	s.CancelRead(proto.CodeOK)
	if err != nil {
		return nil, err
	}
	if e, ok := reply.(*proto.ErrorMsg); ok {
		return nil, &proto.Error{Code: e.Code, Msg: e.Message}
	}
	return reply, nil
}
