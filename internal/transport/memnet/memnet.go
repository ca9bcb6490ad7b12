// Package memnet is an in-memory transport.Transport for unit tests and the
// simulator: no sockets, no TLS, but the same interface and the same error
// codes as quicnet. A Network is seeded, so runs repeat; each link has a
// latency and a loss rate (a lost chunk is delivered late, as a
// retransmission would be), and partitions cut links both ways, closing the
// connections that cross them.
package memnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"time"

	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

// Link describes one direction-agnostic link between two addresses.
type Link struct {
	Latency time.Duration // one-way delay of every write
	Loss    float64       // chance in [0,1] that a write is retransmitted (delayed by 3x latency more, at least 1 ms)
}

// Addr is a memnet address ("mem:3").
type Addr string

func (a Addr) Network() string { return "mem" }
func (a Addr) String() string  { return string(a) }

// Network is a set of in-memory endpoints.
type Network struct {
	mu          sync.Mutex
	rng         *rand.Rand
	nodes       map[string]*Transport
	links       map[[2]string]Link
	defaultLink Link
	group       map[string]int // partition group per address; absent = 0
	conns       map[*conn]struct{}
	next        int
}

// NewNetwork returns an empty network whose randomness comes from seed.
func NewNetwork(seed int64) *Network {
	return &Network{rng: rand.New(rand.NewSource(seed)), nodes: map[string]*Transport{},
		links: map[[2]string]Link{}, group: map[string]int{}, conns: map[*conn]struct{}{}}
}

func key(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// SetDefaultLink sets the link used between addresses with no SetLink.
func (n *Network) SetDefaultLink(l Link) { n.mu.Lock(); n.defaultLink = l; n.mu.Unlock() }

// SetLink sets the link between a and b.
func (n *Network) SetLink(a, b string, l Link) { n.mu.Lock(); n.links[key(a, b)] = l; n.mu.Unlock() }

func (n *Network) link(a, b string) Link {
	if l, ok := n.links[key(a, b)]; ok {
		return l
	}
	return n.defaultLink
}

// delay returns the delivery delay of one write on the link a-b.
func (n *Network) delay(a, b string) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.link(a, b)
	d := l.Latency
	if l.Loss > 0 && n.rng.Float64() < l.Loss {
		d += max(3*l.Latency, time.Millisecond)
	}
	return d
}

// Partition puts each listed group of addresses on its own side; addresses
// not listed stay in group 0. Connections that cross a cut are closed with
// CodeTimeout, as an idle timeout would close them.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	n.group = map[string]int{}
	for i, g := range groups {
		for _, a := range g {
			n.group[a] = i + 1
		}
	}
	var cut []*conn
	for c := range n.conns {
		if n.group[c.laddr] != n.group[c.raddr] {
			cut = append(cut, c)
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		c.closeBoth(&proto.Error{Code: proto.CodeTimeout, Msg: "peer stopped answering (partitioned)"})
	}
}

// Heal removes every partition.
func (n *Network) Heal() { n.mu.Lock(); n.group = map[string]int{}; n.mu.Unlock() }

// Listen adds an endpoint with the given peer ID at addr ("" picks "mem:N").
func (n *Network) Listen(addr string, id proto.PeerID) (*Transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" {
		n.next++
		addr = fmt.Sprintf("mem:%d", n.next)
	}
	if _, ok := n.nodes[addr]; ok {
		return nil, fmt.Errorf("memnet: address %s in use", addr)
	}
	t := &Transport{net: n, addr: addr, id: id, accept: make(chan *conn, 64), done: make(chan struct{})}
	n.nodes[addr] = t
	return t, nil
}

// Transport is one in-memory endpoint.
type Transport struct {
	net    *Network
	addr   string
	id     proto.PeerID
	accept chan *conn
	done   chan struct{}
	once   sync.Once
}

var _ transport.Transport = (*Transport)(nil)

func (t *Transport) Addr() net.Addr          { return Addr(t.addr) }
func (t *Transport) LocalPeer() proto.PeerID { return t.id }

// Dial connects to the endpoint at addr after one link latency.
func (t *Transport) Dial(ctx context.Context, addr string, expect proto.PeerID) (transport.Conn, error) {
	n := t.net
	n.mu.Lock()
	dst, ok := n.nodes[addr]
	cut := n.group[t.addr] != n.group[addr]
	n.mu.Unlock()
	if !ok || cut {
		return nil, &proto.Error{Code: proto.CodeTimeout, Msg: fmt.Sprintf("dial %s: no answer to the handshake", addr)}
	}
	if err := sleep(ctx, n.delay(t.addr, addr)); err != nil {
		return nil, err
	}
	if !expect.IsZero() && dst.id != expect {
		return nil, proto.Errorf(proto.CodePeerIDMismatch, "dial %s: peer is %s, not the expected %s", addr, dst.id, expect)
	}
	a, b := newConnPair(n, t, dst)
	select {
	case dst.accept <- b:
	case <-dst.done:
		return nil, &proto.Error{Code: proto.CodeTimeout, Msg: fmt.Sprintf("dial %s: no answer to the handshake", addr)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return a, nil
}

// Accept returns the next incoming connection.
func (t *Transport) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case c := <-t.accept:
		return c, nil
	case <-t.done:
		return nil, errors.New("memnet: transport closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close removes the endpoint and closes its connections.
func (t *Transport) Close() error {
	t.once.Do(func() {
		close(t.done)
		n := t.net
		n.mu.Lock()
		delete(n.nodes, t.addr)
		var mine []*conn
		for c := range n.conns {
			if c.local == t {
				mine = append(mine, c)
			}
		}
		n.mu.Unlock()
		for _, c := range mine {
			_ = c.CloseWithError(proto.CodeShutdown, "transport closed")
		}
	})
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conn is one end of an in-memory connection.
type conn struct {
	net          *Network
	local        *Transport
	laddr, raddr string
	lpeer, rpeer proto.PeerID
	peer         *conn
	streams      chan *stream
	ctx          context.Context
	cancel       context.CancelFunc
	mu           sync.Mutex
	err          error
}

func newConnPair(n *Network, from, to *Transport) (*conn, *conn) {
	mk := func(local *Transport, laddr, raddr string, lp, rp proto.PeerID) *conn {
		ctx, cancel := context.WithCancel(context.Background())
		return &conn{net: n, local: local, laddr: laddr, raddr: raddr, lpeer: lp, rpeer: rp,
			streams: make(chan *stream, 256), ctx: ctx, cancel: cancel}
	}
	a := mk(from, from.addr, to.addr, from.id, to.id)
	b := mk(to, to.addr, from.addr, to.id, from.id)
	a.peer, b.peer = b, a
	n.mu.Lock()
	n.conns[a], n.conns[b] = struct{}{}, struct{}{}
	n.mu.Unlock()
	return a, b
}

func (c *conn) LocalPeer() proto.PeerID  { return c.lpeer }
func (c *conn) RemotePeer() proto.PeerID { return c.rpeer }
func (c *conn) RemoteAddr() net.Addr     { return Addr(c.raddr) }
func (c *conn) Context() context.Context { return c.ctx }

func (c *conn) closed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) closeWith(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.mu.Unlock()
	c.cancel()
	c.net.mu.Lock()
	delete(c.net.conns, c)
	c.net.mu.Unlock()
}

func (c *conn) closeBoth(err error) {
	c.closeWith(err)
	c.peer.closeWith(err)
}

func (c *conn) CloseWithError(code proto.ErrorCode, reason string) error {
	c.closeWith(&proto.Error{Code: code, Msg: "we closed the connection: " + reason})
	c.peer.closeWith(&proto.Error{Code: code, Msg: "peer closed the connection: " + reason})
	return nil
}

func (c *conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	if err := c.closed(); err != nil {
		return nil, err
	}
	ab := newPipe(c, c.laddr, c.raddr)
	ba := newPipe(c.peer, c.raddr, c.laddr)
	mine := &stream{c: c, in: ba, out: ab}
	theirs := &stream{c: c.peer, in: ab, out: ba}
	select {
	case c.peer.streams <- theirs:
		return mine, nil
	case <-c.ctx.Done():
		return nil, c.closed()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	select {
	case s := <-c.streams:
		return s, nil
	case <-c.ctx.Done():
		return nil, c.closed()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

const pipeBuffer = 1 << 20 // bytes in flight per direction before Write blocks (flow control)

type chunk struct {
	b  []byte
	at time.Time
}

// pipe carries bytes one way, each write delivered after the link delay.
type pipe struct {
	owner    *conn // the reading end's connection
	from, to string
	mu       sync.Mutex
	wake     chan struct{} // closed and replaced on every change
	chunks   []chunk
	buffered int
	eof      bool  // writer closed
	rerr     error // reader sees this (writer reset)
	werr     error // writer sees this (reader stopped)
	rdl, wdl time.Time
}

func newPipe(owner *conn, from, to string) *pipe {
	return &pipe{owner: owner, from: from, to: to, wake: make(chan struct{})}
}

func (p *pipe) changed() { close(p.wake); p.wake = make(chan struct{}) }

// wait blocks until wake, deadline dl, time at, or connection close.
func (p *pipe) wait(wake chan struct{}, dl, at time.Time) {
	var timer <-chan time.Time
	next := dl
	if !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	if !next.IsZero() {
		tm := time.NewTimer(time.Until(next))
		defer tm.Stop()
		timer = tm.C
	}
	select {
	case <-wake:
	case <-timer:
	case <-p.owner.ctx.Done():
	case <-p.owner.peer.ctx.Done():
	}
}

func (p *pipe) connErr() error {
	if err := p.owner.closed(); err != nil {
		return err
	}
	return p.owner.peer.closed()
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	for {
		if p.rerr != nil {
			err := p.rerr
			p.mu.Unlock()
			return 0, err
		}
		now := time.Now()
		if len(p.chunks) > 0 && !p.chunks[0].at.After(now) {
			n := 0
			for len(p.chunks) > 0 && n < len(b) && !p.chunks[0].at.After(now) {
				k := copy(b[n:], p.chunks[0].b)
				n += k
				if k == len(p.chunks[0].b) {
					p.chunks = p.chunks[1:]
				} else {
					p.chunks[0].b = p.chunks[0].b[k:]
				}
			}
			p.buffered -= n
			p.changed()
			p.mu.Unlock()
			return n, nil
		}
		if len(p.chunks) == 0 && p.eof {
			p.mu.Unlock()
			return 0, io.EOF
		}
		if err := p.connErr(); err != nil {
			p.mu.Unlock()
			return 0, err
		}
		if !p.rdl.IsZero() && !now.Before(p.rdl) {
			p.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		var at time.Time
		if len(p.chunks) > 0 {
			at = p.chunks[0].at
		}
		wake, dl := p.wake, p.rdl
		p.mu.Unlock()
		p.wait(wake, dl, at)
		p.mu.Lock()
	}
}

func (p *pipe) write(b []byte) (int, error) {
	delay := p.owner.net.delay(p.from, p.to)
	p.mu.Lock()
	defer p.mu.Unlock()
	written := 0
	for written < len(b) {
		if p.werr != nil {
			return written, p.werr
		}
		if p.eof {
			return written, errors.New("memnet: write on closed stream")
		}
		if err := p.connErr(); err != nil {
			return written, err
		}
		if !p.wdl.IsZero() && !time.Now().Before(p.wdl) {
			return written, os.ErrDeadlineExceeded
		}
		room := pipeBuffer - p.buffered
		if room <= 0 {
			wake, dl := p.wake, p.wdl
			p.mu.Unlock()
			p.wait(wake, dl, time.Time{})
			p.mu.Lock()
			continue
		}
		k := min(room, len(b)-written)
		at := time.Now().Add(delay)
		if n := len(p.chunks); n > 0 && p.chunks[n-1].at.After(at) {
			at = p.chunks[n-1].at // in order, like a stream
		}
		p.chunks = append(p.chunks, chunk{b: append([]byte(nil), b[written:written+k]...), at: at})
		p.buffered += k
		written += k
		p.changed()
	}
	return written, nil
}

// stream is one end of an in-memory stream.
type stream struct {
	c   *conn
	in  *pipe
	out *pipe
}

func (s *stream) Read(b []byte) (int, error)  { return s.in.read(b) }
func (s *stream) Write(b []byte) (int, error) { return s.out.write(b) }

func (s *stream) Close() error {
	s.out.mu.Lock()
	s.out.eof = true
	s.out.changed()
	s.out.mu.Unlock()
	return nil
}

func (s *stream) CancelWrite(code proto.ErrorCode) {
	s.out.mu.Lock()
	if !s.out.eof || len(s.out.chunks) > 0 {
		s.out.rerr = &proto.Error{Code: code, Msg: "peer reset the stream"}
	}
	s.out.chunks, s.out.buffered, s.out.eof = nil, 0, true
	s.out.changed()
	s.out.mu.Unlock()
}

func (s *stream) CancelRead(code proto.ErrorCode) {
	s.in.mu.Lock()
	if s.in.werr == nil && !s.in.eof {
		s.in.werr = &proto.Error{Code: code, Msg: "peer reset the stream"}
	}
	if s.in.rerr == nil {
		s.in.rerr = &proto.Error{Code: code, Msg: "we reset the stream"}
	}
	s.in.chunks, s.in.buffered = nil, 0
	s.in.changed()
	s.in.mu.Unlock()
}

func (s *stream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *stream) SetReadDeadline(t time.Time) error {
	s.in.mu.Lock()
	s.in.rdl = t
	s.in.changed()
	s.in.mu.Unlock()
	return nil
}

func (s *stream) SetWriteDeadline(t time.Time) error {
	s.out.mu.Lock()
	s.out.wdl = t
	s.out.changed()
	s.out.mu.Unlock()
	return nil
}
