// Package session runs Strata's protocol on a transport.Conn: the hello
// exchange that negotiates the protocol version and tells each end the
// other's role and listen addresses, and the per-stream dispatch in which the
// first message of each stream names the request. A bad frame ends only its
// stream, with the proto error code, and a log line.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

// HelloTimeout bounds the hello exchange.
const HelloTimeout = 5 * time.Second

// FirstMessageTimeout bounds how long a new stream may stay silent before
// its first message: a peer can't hold handler goroutines by opening
// streams and sending nothing.
const FirstMessageTimeout = 10 * time.Second

// Session is a connection after a successful hello.
type Session struct {
	transport.Conn
	Remote  proto.Hello // what the other end said about itself
	Version uint16      // negotiated protocol version
}

// Stream is a transport stream with framing.
type Stream struct {
	transport.Stream
	r *proto.Reader
	w *proto.Writer
}

// NewStream wraps s with a frame reader (cap maxFrame; 0 for the default) and writer.
func NewStream(s transport.Stream, maxFrame int) *Stream {
	return &Stream{Stream: s, r: proto.NewReader(s, maxFrame), w: proto.NewWriter(s)}
}

// Recv reads the next message.
func (s *Stream) Recv() (proto.Message, error) { return s.r.ReadMsg() }

// Send writes one message.
func (s *Stream) Send(m proto.Message) error { return s.w.WriteMsg(m) }

// Fail ends the stream because of err: it sends an ErrorMsg with err's code
// and text, closes the write side, and stops the peer's sending with the same
// code (QUIC STOP_SENDING), so the peer reads why and its writes fail with
// the code.
func (s *Stream) Fail(err error) {
	code := proto.CodeOf(err)
	_ = s.SetWriteDeadline(time.Now().Add(time.Second))
	_ = s.w.WriteMsg(&proto.ErrorMsg{Code: code, Message: truncate(err.Error(), proto.MaxText)})
	_ = s.Close()
	s.CancelRead(code)
}

// Finish closes the write side and drains the read side, so the stream's
// slot is returned to the peer.
func (s *Stream) Finish() {
	_ = s.Close()
	s.CancelRead(proto.CodeOK)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Open opens a framed stream on the session.
func (s *Session) Open(ctx context.Context) (*Stream, error) {
	st, err := s.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	return NewStream(st, 0), nil
}

// Request sends msg on a new stream and returns the single reply; an
// ErrorMsg reply comes back as a *proto.Error.
func (s *Session) Request(ctx context.Context, msg proto.Message) (proto.Message, error) {
	return transport.OneShot(ctx, s.Conn, msg)
}

// Client runs the dialer's half of the hello: open the control stream, send
// our hello, read theirs.
func Client(ctx context.Context, c transport.Conn, hello proto.Hello) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	raw, err := c.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	st := NewStream(raw, 0)
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	if err := st.Send(&hello); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	_ = st.Close()
	m, err := st.Recv()
	st.CancelRead(proto.CodeOK)
	if err != nil {
		return nil, fmt.Errorf("hello from %s: %w", c.RemotePeer().Short(), err)
	}
	switch m := m.(type) {
	case *proto.Hello:
		v, ok := proto.NegotiateVersion(hello.MinVersion, hello.MaxVersion, m.MinVersion, m.MaxVersion)
		if !ok {
			err := proto.Errorf(proto.CodeVersionMismatch, "peer speaks protocol versions %d-%d, we speak %d-%d; upgrade the older node",
				m.MinVersion, m.MaxVersion, hello.MinVersion, hello.MaxVersion)
			_ = c.CloseWithError(proto.CodeVersionMismatch, err.Msg)
			return nil, err
		}
		return &Session{Conn: c, Remote: *m, Version: v}, nil
	case *proto.ErrorMsg:
		return nil, &proto.Error{Code: m.Code, Msg: m.Message}
	default:
		return nil, proto.Errorf(proto.CodeProtocol, "want Hello, got %s", m.Type())
	}
}

// Server runs the acceptor's half: read the dialer's hello on the first
// stream and answer with ours. A peer with no common version gets an
// ErrorMsg and the connection is closed with CodeVersionMismatch.
func Server(ctx context.Context, c transport.Conn, hello proto.Hello) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	raw, err := c.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	st := NewStream(raw, 4<<10)
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	m, err := st.Recv()
	if err != nil {
		st.Fail(err)
		_ = c.CloseWithError(proto.CodeOf(err), "bad hello")
		return nil, fmt.Errorf("hello from %s: %w", c.RemotePeer().Short(), err)
	}
	h, ok := m.(*proto.Hello)
	if !ok {
		err := proto.Errorf(proto.CodeProtocol, "first message must be Hello, got %s", m.Type())
		st.Fail(err)
		_ = c.CloseWithError(err.Code, err.Msg)
		return nil, err
	}
	v, ok := proto.NegotiateVersion(hello.MinVersion, hello.MaxVersion, h.MinVersion, h.MaxVersion)
	if !ok {
		err := proto.Errorf(proto.CodeVersionMismatch, "peer speaks protocol versions %d-%d, we speak %d-%d",
			h.MinVersion, h.MaxVersion, hello.MinVersion, hello.MaxVersion)
		st.Fail(err)
		_ = c.CloseWithError(err.Code, err.Msg)
		return nil, err
	}
	if len(h.ListenAddrs) > proto.MaxAddrs {
		h.ListenAddrs = h.ListenAddrs[:proto.MaxAddrs]
	}
	if err := st.Send(&hello); err != nil {
		return nil, err
	}
	st.Finish()
	return &Session{Conn: c, Remote: *h, Version: v}, nil
}

// Handler serves one stream whose first message was first. It owns the
// stream: it must Finish or Fail it.
type Handler func(ctx context.Context, s *Session, st *Stream, first proto.Message)

// Serve accepts streams until the connection or ctx ends, reads each one's
// first message and hands it to h in a new goroutine. A stream whose first
// frame is bad is reset with the error's code and logged; the connection and
// other streams go on. Serve returns when the connection is closed, after
// every handler it started has returned.
func (s *Session) Serve(ctx context.Context, log *zap.Logger, maxFrame int, h Handler) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		raw, err := s.AcceptStream(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) || proto.CodeOf(err) == proto.CodeOK {
				return nil // we or the peer closed normally
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := NewStream(raw, maxFrame)
			_ = st.SetReadDeadline(time.Now().Add(FirstMessageTimeout))
			m, err := st.Recv()
			_ = st.SetReadDeadline(time.Time{})
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = proto.Errorf(proto.CodeTimeout, "no first message within %v", FirstMessageTimeout)
			}
			if err != nil {
				if err != io.EOF {
					log.Info("bad first frame on stream; resetting it",
						zap.Stringer("peer", s.RemotePeer()), zap.Stringer("code", proto.CodeOf(err)), zap.Error(err))
					st.Fail(err)
				} else {
					st.Finish()
				}
				return
			}
			h(ctx, s, st, m)
		}()
	}
}
