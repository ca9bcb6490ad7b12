// Package quicnet is the QUIC implementation of transport.Transport: one
// quic.Transport (one UDP socket) per process both listens and dials, TLS 1.3
// with certificates bound to the node's Ed25519 key, keep-alives and an idle
// timeout that notice a dead peer in about two seconds, stream windows sized
// for bulk transfer, and a stateless reset key derived from the node key so
// peers notice a restarted node at once.
package quicnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

// Config tunes the QUIC transport. The zero value is valid: unset fields take
// the defaults of DefaultConfig.
type Config struct {
	// IdleTimeout closes a connection that has heard nothing for this long;
	// with KeepAlive it is how fast a dead peer is noticed.
	IdleTimeout time.Duration
	// KeepAlive is the interval of keep-alive packets; it must be well under
	// IdleTimeout.
	KeepAlive time.Duration
	// HandshakeTimeout bounds a dial.
	HandshakeTimeout time.Duration
	// MaxStreamWindow and MaxConnWindow are the flow-control windows a
	// stream and a connection may grow to (bulk transfer wants 10-32 MB).
	MaxStreamWindow uint64
	MaxConnWindow   uint64
	// MaxIncomingStreams bounds concurrent streams a peer may open.
	MaxIncomingStreams int64
	Logger             *zap.Logger

	noPMTUD bool // a relayed path: keep packets at the initial size
}

// DefaultConfig returns the defaults; they are stated only here.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:        2 * time.Second,
		KeepAlive:          500 * time.Millisecond,
		HandshakeTimeout:   5 * time.Second,
		MaxStreamWindow:    16 << 20,
		MaxConnWindow:      32 << 20,
		MaxIncomingStreams: 256,
	}
}

func (c Config) populate() Config {
	d := DefaultConfig()
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = d.KeepAlive
	}
	if c.KeepAlive >= c.IdleTimeout {
		c.KeepAlive = c.IdleTimeout / 4
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.MaxStreamWindow == 0 {
		c.MaxStreamWindow = d.MaxStreamWindow
	}
	if c.MaxConnWindow < c.MaxStreamWindow {
		c.MaxConnWindow = max(d.MaxConnWindow, c.MaxStreamWindow)
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = d.MaxIncomingStreams
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

func (c Config) quic() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           c.HandshakeTimeout,
		MaxIdleTimeout:                 c.IdleTimeout,
		KeepAlivePeriod:                c.KeepAlive,
		InitialStreamReceiveWindow:     min(c.MaxStreamWindow, 2<<20),
		MaxStreamReceiveWindow:         c.MaxStreamWindow,
		InitialConnectionReceiveWindow: min(c.MaxConnWindow, 4<<20),
		MaxConnectionReceiveWindow:     c.MaxConnWindow,
		MaxIncomingStreams:             c.MaxIncomingStreams,
		MaxIncomingUniStreams:          -1,
		DisablePathMTUDiscovery:        c.noPMTUD,
	}
}

// Transport is a QUIC endpoint on one UDP socket.
type Transport struct {
	cfg  Config
	id   *identity.Identity
	udp  net.PacketConn
	tr   *quic.Transport
	ln   *quic.Listener
	once sync.Once
}

var _ transport.Transport = (*Transport)(nil)

// Listen binds addr (host:port; port 0 picks one) and starts accepting.
func Listen(addr string, id *identity.Identity, cfg Config) (*Transport, error) {
	cfg = cfg.populate()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w (is another node using that port? pick another with --listen)", addr, err)
	}
	t, err := listenOn(udp, id, cfg)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return t, nil
}

// ListenPacketConn runs a Transport on pc, which need not be a UDP socket
// (a relayed path: see StreamPacketConn). Path MTU discovery is off, so
// packets stay at QUIC's initial size. Close closes pc.
func ListenPacketConn(pc net.PacketConn, id *identity.Identity, cfg Config) (*Transport, error) {
	cfg = cfg.populate()
	cfg.noPMTUD = true
	return listenOn(pc, id, cfg)
}

func listenOn(pc net.PacketConn, id *identity.Identity, cfg Config) (*Transport, error) {
	key := quic.StatelessResetKey(id.DeriveKey("quic stateless reset"))
	t := &Transport{cfg: cfg, id: id, udp: pc, tr: &quic.Transport{Conn: pc, StatelessResetKey: &key}}
	var err error
	t.ln, err = t.tr.Listen(id.TLSConfig(proto.PeerID{}, nil), cfg.quic())
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Addr is the bound UDP address.
func (t *Transport) Addr() net.Addr { return t.udp.LocalAddr() }

// LocalPeer is this node's peer ID.
func (t *Transport) LocalPeer() proto.PeerID { return t.id.PeerID() }

// Dial connects to addr from the listening socket.
func (t *Transport) Dial(ctx context.Context, addr string, expect proto.PeerID) (transport.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad address: %w", addr, err)
	}
	return t.DialAddr(ctx, ua, expect)
}

// DialAddr is Dial to a resolved address (a RelayAddr on a relayed path).
func (t *Transport) DialAddr(ctx context.Context, ua net.Addr, expect proto.PeerID) (transport.Conn, error) {
	addr := ua.String()
	var mismatch *identity.MismatchError
	var mu sync.Mutex
	tlsConf := t.id.TLSConfig(expect, func(e *identity.MismatchError) { mu.Lock(); mismatch = e; mu.Unlock() })
	qc, err := t.tr.Dial(ctx, ua, tlsConf, t.cfg.quic())
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		if mismatch != nil {
			return nil, proto.Errorf(proto.CodePeerIDMismatch, "dial %s: %v", addr, mismatch)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, mapErr(err))
	}
	return t.wrap(qc)
}

// Accept returns the next authenticated incoming connection.
func (t *Transport) Accept(ctx context.Context) (transport.Conn, error) {
	for {
		qc, err := t.ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, mapErr(err)
		}
		c, err := t.wrap(qc)
		if err != nil {
			t.cfg.Logger.Warn("refused connection", zap.Stringer("remote", qc.RemoteAddr()), zap.Error(err))
			continue
		}
		return c, nil
	}
}

func (t *Transport) wrap(qc *quic.Conn) (*Conn, error) {
	st := qc.ConnectionState().TLS
	if len(st.PeerCertificates) != 1 {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(proto.CodeRefused), "no certificate")
		return nil, errors.New("peer presented no certificate")
	}
	pid, err := identity.PeerIDOfChain(st.PeerCertificates)
	if err != nil {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(proto.CodeRefused), "bad certificate")
		return nil, err
	}
	return &Conn{qc: qc, local: t.id.PeerID(), remote: pid}, nil
}

// Close closes every connection, the listener and the socket.
func (t *Transport) Close() error {
	var err error
	t.once.Do(func() {
		_ = t.ln.Close()
		err = t.tr.Close()
		_ = t.udp.Close()
	})
	return err
}

// TLSConfigForTest exposes the TLS configuration (benchmarks compare against
// plain quic-go with the same certificates).
func (t *Transport) TLSConfigForTest() *tls.Config { return t.id.TLSConfig(proto.PeerID{}, nil) }

// Conn is an authenticated QUIC connection.
type Conn struct {
	qc            *quic.Conn
	local, remote proto.PeerID
}

var _ transport.Conn = (*Conn)(nil)

func (c *Conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	return &Stream{s}, nil
}

func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	return &Stream{s}, nil
}

func (c *Conn) LocalPeer() proto.PeerID     { return c.local }
func (c *Conn) RemotePeer() proto.PeerID    { return c.remote }
func (c *Conn) RemoteAddr() net.Addr        { return c.qc.RemoteAddr() }
func (c *Conn) Context() context.Context    { return c.qc.Context() }
func (c *Conn) Stats() quic.ConnectionStats { return c.qc.ConnectionStats() }
func (c *Conn) CloseWithError(code proto.ErrorCode, reason string) error {
	return c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// Stream wraps a quic stream to map errors to proto codes.
type Stream struct{ *quic.Stream }

func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil {
		err = mapErr(err)
	}
	return n, err
}

func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if err != nil {
		err = mapErr(err)
	}
	return n, err
}

func (s *Stream) CancelRead(code proto.ErrorCode) {
	s.Stream.CancelRead(quic.StreamErrorCode(code))
}

func (s *Stream) CancelWrite(code proto.ErrorCode) {
	s.Stream.CancelWrite(quic.StreamErrorCode(code))
}

// mapErr turns quic-go's errors into *proto.Error with the code the peer
// sent, so that callers see "rate limited" rather than "Application error 0x6".
func mapErr(err error) error {
	var se *quic.StreamError
	var ae *quic.ApplicationError
	var ie *quic.IdleTimeoutError
	var he *quic.HandshakeTimeoutError
	switch {
	case errors.As(err, &se):
		who := "peer"
		if !se.Remote {
			who = "we"
		}
		return &proto.Error{Code: proto.ErrorCode(se.ErrorCode), Msg: who + " reset the stream"}
	case errors.As(err, &ae):
		who := "peer"
		if !ae.Remote {
			who = "we"
		}
		return &proto.Error{Code: proto.ErrorCode(ae.ErrorCode), Msg: fmt.Sprintf("%s closed the connection: %s", who, ae.ErrorMessage)}
	case errors.As(err, &ie):
		return &proto.Error{Code: proto.CodeTimeout, Msg: "peer stopped answering (idle timeout)"}
	case errors.As(err, &he):
		return &proto.Error{Code: proto.CodeTimeout, Msg: "no answer to the handshake (is a Strata node listening there?)"}
	}
	return err
}
