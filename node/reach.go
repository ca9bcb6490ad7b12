package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
)

// How long each way of reaching a holder is given before the next is tried
// (all of them fit in a download's stall timeout, 10 s).
const (
	directWait    = 1500 * time.Millisecond // before the other ways start (the direct dial goes on)
	pushWait      = 2500 * time.Millisecond
	punchWait     = 2500 * time.Millisecond
	relayWait     = 5 * time.Second
	unusedClose   = 15 * time.Second // a pushed or punched connection nobody opened a stream on
	dialBackGap   = time.Second      // least time between two dials to one asker (push, punch)
	maxDialBacks  = 1024             // askers remembered for that
	maxHolderVias = 4096             // unreachable holders' supernodes remembered from hits
)

// Ways a download source was reached, as `strata downloads` shows them.
const (
	ViaDirect = "direct"
	ViaPush   = "push"
	ViaPunch  = "punch"
	ViaRelay  = "relay"
)

// reachState is the node's side of reachability: what the dial-backs
// found, the inbound connections downloads wait for (push, punch), how
// each download session was reached, and the counters.
type reachState struct {
	reach atomic.Uint32 // proto.Reachability

	mu       sync.Mutex
	waiters  map[proto.PeerID]chan *session.Session
	paths    map[*session.Session]transfer.Path
	lastDial map[proto.PeerID]time.Time
	via      map[string]uint64 // sources reached, by way
	refused  map[string]uint64 // notices and attempts refused or failed, by reason
	// holderVia is, for unreachable holders found in searches, their
	// supernode and its ticket (proto.Hit.Via), bounded by maxHolderVias.
	holderVia map[proto.PeerID]proto.Via
}

func (r *reachState) init() {
	if r.waiters == nil {
		r.waiters = map[proto.PeerID]chan *session.Session{}
		r.paths = map[*session.Session]transfer.Path{}
		r.lastDial = map[proto.PeerID]time.Time{}
		r.via = map[string]uint64{}
		r.refused = map[string]uint64{}
	}
}

func (r *reachState) count(m func(*reachState) map[string]uint64, key string) {
	r.mu.Lock()
	r.init()
	m(r)[key]++
	r.mu.Unlock()
}

// Reachability is what the bootstrap server's dial-backs last found.
func (n *Node) Reachability() proto.Reachability { return proto.Reachability(n.rch.reach.Load()) }

// setReach records a dial-back result (each check-in) and tells each
// supernode the node is attached to, when it changed or the attachment is
// new since the node last told it.
func (n *Node) setReach(ctx context.Context, r proto.Reachability) {
	n.rch.reach.Store(uint32(r))
	for _, att := range n.attachments() {
		if !att.tellReach(r) {
			continue
		}
		n.goRun(func() {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := att.sess.Request(rctx, &proto.Reach{Reachable: r}); err != nil && ctx.Err() == nil {
				n.log.Info("cannot tell the supernode our reachability", zap.Stringer("supernode", att.sn.ID), zap.Error(err))
				att.forgetReach()
			}
		})
	}
}

// tellReach reports whether the supernode of a must be told r, and marks it
// told.
func (a *attachment) tellReach(r proto.Reachability) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reachTold && a.reach == r {
		return false
	}
	a.reachTold, a.reach = true, r
	return true
}

// forgetReach makes the next check-in tell the supernode again.
func (a *attachment) forgetReach() {
	a.mu.Lock()
	a.reachTold = false
	a.mu.Unlock()
}

// deliver hands an inbound session to a download waiting for that peer to
// connect (push, punch). It reports whether one was waiting.
func (n *Node) deliver(s *session.Session) bool {
	n.rch.mu.Lock()
	defer n.rch.mu.Unlock()
	ch, ok := n.rch.waiters[s.RemotePeer()]
	if !ok {
		return false
	}
	select {
	case ch <- s:
		delete(n.rch.waiters, s.RemotePeer())
		return true
	default:
		return false
	}
}

func (n *Node) awaitInbound(id proto.PeerID) (<-chan *session.Session, func()) {
	ch := make(chan *session.Session, 1)
	n.rch.mu.Lock()
	n.rch.init()
	n.rch.waiters[id] = ch
	n.rch.mu.Unlock()
	return ch, func() {
		n.rch.mu.Lock()
		if n.rch.waiters[id] == ch {
			delete(n.rch.waiters, id)
		}
		n.rch.mu.Unlock()
	}
}

// sessionPath tells the download manager how a source's session was reached.
func (n *Node) sessionPath(s *session.Session) transfer.Path {
	n.rch.mu.Lock()
	defer n.rch.mu.Unlock()
	if p, ok := n.rch.paths[s]; ok {
		return p
	}
	return transfer.Path{Via: ViaDirect}
}

func (n *Node) notePath(s *session.Session, p transfer.Path) {
	n.rch.mu.Lock()
	n.rch.init()
	n.rch.paths[s] = p
	n.rch.via[p.Via]++
	n.rch.mu.Unlock()
	context.AfterFunc(s.Context(), func() {
		n.rch.mu.Lock()
		delete(n.rch.paths, s)
		n.rch.mu.Unlock()
	})
}

// ReachStatus is the node's reachability and its push, punch and relay
// counters (on a leaf: as a downloader and as a holder).
type ReachStatus struct {
	Reachable proto.Reachability `json:"reachable"`
	Via       map[string]uint64  `json:"sources_via"`
	Refused   map[string]uint64  `json:"refused"`
}

func (n *Node) reachStatus() ReachStatus {
	n.rch.mu.Lock()
	defer n.rch.mu.Unlock()
	st := ReachStatus{Reachable: n.Reachability(), Via: map[string]uint64{}, Refused: map[string]uint64{}}
	for k, v := range n.rch.via {
		st.Via[k] = v
	}
	for k, v := range n.rch.refused {
		st.Refused[k] = v
	}
	return st
}

// connectPeer is the download manager's dialer: direct first (unless the
// holder is known to be unreachable), then through the node's supernode:
// push (the holder dials us; only when we may be reachable), hole punching,
// and relay. A direct dial that has not answered within directWait goes on
// beside the others (a busy holder may just be slow), and the first
// connection up wins.
func (n *Node) connectPeer(ctx context.Context, p proto.PeerInfo) (*session.Session, error) {
	type result struct {
		s   *session.Session
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errs []error
	direct := make(chan result, 1)
	pending := 0
	if p.Reachable != proto.ReachUnreachable {
		pending++
		n.goRun(func() {
			s, err := n.dialDirect(ctx, p, 0)
			direct <- result{s, err}
		})
		wait := time.NewTimer(directWait)
		select {
		case r := <-direct:
			wait.Stop()
			pending--
			if r.err == nil {
				return r.s, nil
			}
			errs = append(errs, fmt.Errorf("direct: %w", r.err))
		case <-wait.C:
		}
	}
	others := make(chan result, 1)
	pending++
	n.goRun(func() {
		s, err := n.viaSupernode(ctx, p)
		others <- result{s, err}
	})
	var won *session.Session
	for pending > 0 && won == nil {
		var r result
		select {
		case r = <-direct:
			if r.err != nil {
				r.err = fmt.Errorf("direct: %w", r.err)
			}
		case r = <-others:
		}
		pending--
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		won = r.s
	}
	if won == nil {
		return nil, errors.Join(errs...)
	}
	cancel()
	if pending > 0 { // the slower way may still come up: close it
		n.goRun(func() {
			var r result
			select {
			case r = <-direct:
			case r = <-others:
			}
			if r.s != nil {
				_ = r.s.CloseWithError(proto.CodeOK, "another connection won")
			}
		})
	}
	return won, nil
}

// viaSupernode tries push, hole punching and relay in turn.
func (n *Node) viaSupernode(ctx context.Context, p proto.PeerInfo) (*session.Session, error) {
	var errs []error
	tries := []struct {
		via string
		f   func(context.Context, proto.PeerInfo) (*session.Session, error)
	}{{ViaPush, n.viaPush}, {ViaPunch, n.viaPunch}, {ViaRelay, n.viaRelay}}
	for _, t := range tries {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if t.via == ViaPush && n.Reachability() == proto.ReachUnreachable {
			continue // the holder could not dial us either
		}
		s, err := t.f(ctx, p)
		if err == nil {
			if ctx.Err() != nil { // a direct connection won meanwhile
				_ = s.CloseWithError(proto.CodeOK, "another connection won")
				return nil, ctx.Err()
			}
			n.log.Info("reached a holder", zap.Stringer("peer", p.ID), zap.String("via", t.via))
			return s, nil
		}
		n.log.Info("cannot reach a holder this way", zap.Stringer("peer", p.ID), zap.String("via", t.via), zap.Error(err))
		errs = append(errs, fmt.Errorf("%s: %w", t.via, err))
	}
	return nil, errors.Join(errs...)
}

// dialDirect dials p's advertised addresses, each for at most wait (0:
// as long as ctx allows).
func (n *Node) dialDirect(ctx context.Context, p proto.PeerInfo, wait time.Duration) (*session.Session, error) {
	var errs []error
	for _, addr := range p.Addrs {
		dctx, cancel := context.WithCancel(ctx)
		if wait > 0 {
			dctx, cancel = context.WithTimeout(ctx, wait)
		}
		s, err := n.dialAddr(dctx, addr, p.ID)
		cancel()
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("peer %s has no address", p.ID.Short())
	}
	return nil, errors.Join(errs...)
}

func (n *Node) dialAddr(ctx context.Context, addr string, id proto.PeerID) (*session.Session, error) {
	c, err := n.tr.Dial(ctx, addr, id)
	if err != nil {
		return nil, err
	}
	s, err := session.Client(ctx, c, n.hello())
	if err != nil {
		_ = c.CloseWithError(proto.CodeOf(err), "hello failed")
		return nil, err
	}
	return s, nil
}

// rememberVia keeps an unreachable holder's supernode and ticket from a
// hit, for reaching it later (viaSupernodes).
func (n *Node) rememberVia(h proto.Hit) {
	if h.Via == nil || h.Via.Supernode.ID.IsZero() || h.Via.Supernode.ID == n.PeerID() {
		return
	}
	now := time.Now().Unix()
	n.rch.mu.Lock()
	defer n.rch.mu.Unlock()
	if n.rch.holderVia == nil {
		n.rch.holderVia = map[proto.PeerID]proto.Via{}
	}
	if _, ok := n.rch.holderVia[h.Holder.ID]; !ok && len(n.rch.holderVia) >= maxHolderVias {
		for id, v := range n.rch.holderVia {
			if v.Expires < now {
				delete(n.rch.holderVia, id)
			}
		}
		for id := range n.rch.holderVia { // still full: forget any one
			if len(n.rch.holderVia) < maxHolderVias {
				break
			}
			delete(n.rch.holderVia, id)
		}
	}
	n.rch.holderVia[h.Holder.ID] = *h.Via
}

func (n *Node) viaOf(id proto.PeerID) (proto.Via, bool) {
	n.rch.mu.Lock()
	defer n.rch.mu.Unlock()
	v, ok := n.rch.holderVia[id]
	return v, ok && v.Expires > time.Now().Unix()
}

// dialable returns p with the addresses that can be dialled: those with an
// unspecified host (a supernode bound to a wildcard that has not learnt its
// address yet) are replaced by what the host cache knows of p, which came
// from bootstrap servers that saw where p is.
func (n *Node) dialable(p proto.PeerInfo) proto.PeerInfo {
	var ok []string
	for _, a := range p.Addrs {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
				ok = append(ok, a)
			}
		}
	}
	if len(ok) == 0 {
		for _, e := range n.hosts.Infos() {
			if e.ID == p.ID {
				ok = e.Addrs
			}
		}
	}
	p.Addrs = ok
	return p
}

// connectVia is a supernode that may connect us to a target: one of ours,
// or the target's own, dialled for this with the ticket of a hit.
type connectVia struct {
	sess   *session.Session
	ticket *proto.Via // nil on our own supernode
}

// request is the ConnectRequest for target through v.
func (v connectVia) request(target proto.PeerID, mode proto.ConnectMode) *proto.ConnectRequest {
	m := &proto.ConnectRequest{Target: target, Mode: mode}
	if v.ticket != nil {
		m.Ticket, m.Expires = v.ticket.Ticket, v.ticket.Expires
	}
	return m
}

// viaSupernodes runs ask on the node's supernodes, healthiest first, until
// one answers; a supernode that does not have the target answers "not
// found", and the next is tried. When none of ours has it, the target's
// own supernode (from a hit's Via) is dialled and asked with the hit's
// ticket. It returns a release for the session dialled for this (a no-op
// on our own): the caller calls it once it no longer needs the session.
func (n *Node) viaSupernodes(ctx context.Context, target proto.PeerID, ask func(v connectVia) error) (release func(), err error) {
	noop := func() {}
	atts := n.attachments()
	via, haveVia := n.viaOf(target)
	if len(atts) == 0 && !haveVia {
		return noop, errors.New("not attached to a supernode, which is needed to reach an unreachable peer")
	}
	var errs []error
	for _, att := range atts {
		err := ask(connectVia{sess: att.sess})
		if err == nil {
			return noop, nil
		}
		errs = append(errs, err)
		if proto.CodeOf(err) != proto.CodeNotFound {
			return noop, errors.Join(errs...)
		}
		if att.sn.ID == via.Supernode.ID {
			haveVia = false // asked it already
		}
	}
	if !haveVia {
		return noop, errors.Join(errs...)
	}
	dctx, cancel := context.WithTimeout(ctx, attachDialTimeout)
	s, err := n.dialDirect(dctx, n.dialable(via.Supernode), 0)
	cancel()
	if err != nil {
		return noop, errors.Join(append(errs, fmt.Errorf("the holder's supernode %s: %w", via.Supernode.ID.Short(), err))...)
	}
	release = func() { _ = s.CloseWithError(proto.CodeOK, "done") }
	if err := ask(connectVia{sess: s, ticket: &via}); err != nil {
		release()
		return noop, errors.Join(append(errs, fmt.Errorf("the holder's supernode %s: %w", via.Supernode.ID.Short(), err))...)
	}
	n.log.Debug("asked the holder's supernode", zap.Stringer("holder", target), zap.Stringer("supernode", via.Supernode.ID))
	return release, nil
}

// requestConnect asks a supernode to have p connect to us (push, punch)
// and returns the supernode's reply and the channel p's connection will
// arrive on; stop forgets the wait.
func (n *Node) requestConnect(ctx context.Context, p proto.PeerInfo, mode proto.ConnectMode) (*proto.ConnectReply, <-chan *session.Session, func(), error) {
	inbound, stop := n.awaitInbound(p.ID)
	var reply *proto.ConnectReply
	release, err := n.viaSupernodes(ctx, p.ID, func(v connectVia) error {
		m, err := v.sess.Request(ctx, v.request(p.ID, mode))
		if err != nil {
			return err
		}
		r, ok := m.(*proto.ConnectReply)
		if !ok {
			return proto.Errorf(proto.CodeProtocol, "supernode answered %s to a %s request", m.Type(), mode)
		}
		reply = r
		return nil
	})
	release() // the notice is sent: p dials us on its own
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return reply, inbound, stop, nil
}

func (n *Node) viaPush(ctx context.Context, p proto.PeerInfo) (*session.Session, error) {
	rctx, cancel := context.WithTimeout(ctx, pushWait)
	defer cancel()
	var inbound <-chan *session.Session
	var stop func()
	n.mu.Lock()
	rt := n.sn
	n.mu.Unlock()
	if rt != nil { // a supernode downloading from a leaf of its own tells it itself
		inbound, stop = n.awaitInbound(p.ID)
		if err := rt.PushForSelf(p.ID, n.listenAddrs()[0]); err != nil {
			stop()
			inbound = nil
		}
	}
	if inbound == nil {
		var err error
		if _, inbound, stop, err = n.requestConnect(rctx, p, proto.ConnectPush); err != nil {
			return nil, err
		}
	}
	defer stop()
	select {
	case s := <-inbound:
		n.notePath(s, transfer.Path{Via: ViaPush})
		return s, nil
	case <-rctx.Done():
		return nil, fmt.Errorf("peer %s did not connect back within %v (is it behind a firewall too?)", p.ID.Short(), pushWait)
	}
}

func (n *Node) viaPunch(ctx context.Context, p proto.PeerInfo) (*session.Session, error) {
	rctx, cancel := context.WithTimeout(ctx, punchWait)
	defer cancel()
	reply, inbound, stop, err := n.requestConnect(rctx, p, proto.ConnectPunch)
	if err != nil {
		return nil, err
	}
	defer stop()
	if _, _, err := net.SplitHostPort(reply.Addr); err != nil {
		return nil, proto.Errorf(proto.CodeProtocol, "supernode gave a bad address %q to punch to", reply.Addr)
	}
	sleepCtx(rctx, time.Duration(reply.DelayMillis)*time.Millisecond)
	dialed := make(chan *session.Session, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if s, err := n.dialAddr(rctx, reply.Addr, p.ID); err == nil {
			dialed <- s
		}
	}()
	var s *session.Session
	select {
	case s = <-inbound:
	case s = <-dialed:
	case <-rctx.Done():
	}
	cancel() // stop the other attempt
	wg.Wait()
	select {
	case other := <-dialed: // both came up: keep one
		if s == nil {
			s = other
		} else if other != s {
			_ = other.CloseWithError(proto.CodeOK, "duplicate punched connection")
		}
	default:
	}
	if s == nil {
		return nil, fmt.Errorf("no connection to %s at %s within %v of punching (a NAT that changes ports per destination defeats it)", p.ID.Short(), reply.Addr, punchWait)
	}
	n.notePath(s, transfer.Path{Via: ViaPunch})
	return s, nil
}

// relayTransport runs our identity's QUIC on a relay stream.
func (n *Node) relayTransport(st *session.Stream, far proto.PeerID) (*quicnet.Transport, *quicnet.StreamPacketConn, error) {
	pc := quicnet.NewStreamPacketConn(st.Stream, quicnet.RelayAddr{Via: n.PeerID().Short()}, quicnet.RelayAddr{Via: far.Short()},
		func() { st.CancelRead(proto.CodeOK); st.CancelWrite(proto.CodeOK) })
	tcfg := n.cfg.Transport
	tcfg.Logger = n.log.Named("relay-quic")
	tr, err := quicnet.ListenPacketConn(pc, n.id, tcfg)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	return tr, pc, nil
}

// relayEnded closes a relayed session's transport when the session ends,
// and says so when the supernode ended it (its quota used, or shutting down).
func (n *Node) relayEnded(s *session.Session, tr *quicnet.Transport, pc *quicnet.StreamPacketConn) {
	<-s.Context().Done()
	if err := pc.Err(); err != nil && proto.CodeOf(err) != proto.CodeOK && err != io.EOF {
		n.log.Warn("the supernode ended a relay session", zap.Stringer("peer", s.RemotePeer()),
			zap.Stringer("code", proto.CodeOf(err)), zap.Error(err))
		n.rch.count(func(r *reachState) map[string]uint64 { return r.refused }, "relay_ended_by_supernode")
	}
	_ = tr.Close()
}

func readConnectReply(st *session.Stream) (*proto.ConnectReply, error) {
	m, err := st.Recv()
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *proto.ConnectReply:
		return m, nil
	case *proto.ErrorMsg:
		return nil, &proto.Error{Code: m.Code, Msg: m.Message}
	}
	return nil, proto.Errorf(proto.CodeProtocol, "supernode answered %s to a relay request", m.Type())
}

func (n *Node) viaRelay(ctx context.Context, p proto.PeerInfo) (*session.Session, error) {
	rctx, cancel := context.WithTimeout(ctx, relayWait)
	defer cancel()
	var st *session.Stream
	var reply *proto.ConnectReply
	release, err := n.viaSupernodes(rctx, p.ID, func(v connectVia) error {
		var err error
		if st, err = v.sess.Open(rctx); err != nil {
			return err
		}
		_ = st.SetDeadline(time.Now().Add(relayWait))
		if err := st.Send(v.request(p.ID, proto.ConnectRelay)); err != nil {
			st.CancelRead(proto.CodeInternal)
			return err
		}
		reply, err = readConnectReply(st)
		_ = st.SetDeadline(time.Time{})
		if err != nil {
			st.CancelRead(proto.CodeOK)
			st.CancelWrite(proto.CodeOK)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	tr, pc, err := n.relayTransport(st, p.ID)
	if err != nil {
		release()
		return nil, err
	}
	c, err := tr.DialAddr(rctx, quicnet.RelayAddr{Via: p.ID.Short()}, p.ID)
	if err != nil {
		_ = tr.Close()
		release()
		return nil, err
	}
	s, err := session.Client(rctx, c, n.hello())
	if err != nil {
		_ = tr.Close()
		release()
		return nil, err
	}
	n.goRun(func() { n.relayEnded(s, tr, pc); release() })
	n.notePath(s, transfer.Path{Via: ViaRelay, MaxBps: reply.MaxBps, MaxBytes: reply.MaxBytes})
	return s, nil
}

// onConnectNotice acts on a supernode's notice that a peer wants us:
// push and punch dial it (rate limited per peer), relay joins the session.
// The supernode names the asker and its address, so a peer can make us
// dial only itself, and only through our supernode.
func (n *Node) onConnectNotice(ctx context.Context, a *attachment, m *proto.ConnectNotice) {
	if m.Mode != proto.ConnectRelay {
		now := time.Now()
		n.rch.mu.Lock()
		n.rch.init()
		last, seen := n.rch.lastDial[m.From]
		ok := !seen || now.Sub(last) >= dialBackGap
		if ok {
			if len(n.rch.lastDial) >= maxDialBacks {
				clear(n.rch.lastDial)
			}
			n.rch.lastDial[m.From] = now
		} else {
			n.rch.refused["dial_back_rate_limited"]++
		}
		n.rch.mu.Unlock()
		if !ok {
			n.log.Info("ignored a connect notice: that peer asked less than a second ago", zap.Stringer("peer", m.From))
			return
		}
		if _, _, err := net.SplitHostPort(m.Addr); err != nil {
			n.rch.count(func(r *reachState) map[string]uint64 { return r.refused }, "bad_notice")
			return
		}
	}
	n.goRun(func() {
		var s *session.Session
		var err error
		var closeAfter func()
		switch m.Mode {
		case proto.ConnectPush:
			s, err = n.dialDirect(ctx, proto.PeerInfo{ID: m.From, Addrs: []string{m.Addr}}, pushWait)
		case proto.ConnectPunch:
			sleepCtx(ctx, time.Duration(m.DelayMillis)*time.Millisecond)
			s, err = n.dialDirect(ctx, proto.PeerInfo{ID: m.From, Addrs: []string{m.Addr}}, punchWait)
		case proto.ConnectRelay:
			var tr *quicnet.Transport
			s, tr, err = n.joinRelay(ctx, a, m)
			if tr != nil {
				closeAfter = func() { _ = tr.Close() }
			}
		default:
			err = fmt.Errorf("unknown mode %s", m.Mode)
		}
		if err != nil {
			n.log.Info("cannot connect to a peer that asked", zap.Stringer("peer", m.From), zap.Stringer("mode", m.Mode), zap.Error(err))
			n.rch.count(func(r *reachState) map[string]uint64 { return r.refused }, m.Mode.String()+"_failed")
			return
		}
		n.log.Info("connected to a peer that asked", zap.Stringer("peer", m.From), zap.Stringer("mode", m.Mode))
		n.serveOutbound(ctx, s)
		if closeAfter != nil {
			closeAfter()
		}
	})
}

// serveOutbound serves the streams a peer opens on a connection we made
// for it, and closes it when unused for unusedClose.
func (n *Node) serveOutbound(ctx context.Context, s *session.Session) {
	var used atomic.Bool
	t := time.AfterFunc(unusedClose, func() {
		if !used.Load() {
			_ = s.CloseWithError(proto.CodeOK, "connection unused")
		}
	})
	defer t.Stop()
	_ = s.Serve(ctx, n.log, 0, func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) {
		used.Store(true)
		n.handleStream(ctx, s, st, first)
	})
	_ = s.CloseWithError(proto.CodeOK, "")
}

func (n *Node) joinRelay(ctx context.Context, a *attachment, m *proto.ConnectNotice) (*session.Session, *quicnet.Transport, error) {
	rctx, cancel := context.WithTimeout(ctx, relayWait)
	defer cancel()
	st, err := a.sess.Open(rctx)
	if err != nil {
		return nil, nil, err
	}
	_ = st.SetDeadline(time.Now().Add(relayWait))
	if err := st.Send(&proto.RelayJoin{Session: m.Session}); err != nil {
		st.CancelRead(proto.CodeInternal)
		return nil, nil, err
	}
	if _, err := readConnectReply(st); err != nil {
		st.CancelRead(proto.CodeOK)
		st.CancelWrite(proto.CodeOK)
		return nil, nil, err
	}
	_ = st.SetDeadline(time.Time{})
	tr, _, err := n.relayTransport(st, m.From)
	if err != nil {
		return nil, nil, err
	}
	c, err := tr.Accept(rctx)
	if err == nil && c.RemotePeer() != m.From {
		_ = c.CloseWithError(proto.CodeRefused, "not the peer that asked for this relay")
		err = proto.Errorf(proto.CodeRefused, "relayed connection from %s, not %s", c.RemotePeer().Short(), m.From.Short())
	}
	if err != nil {
		_ = tr.Close()
		return nil, nil, err
	}
	s, err := session.Server(rctx, c, n.hello())
	if err != nil {
		_ = tr.Close()
		return nil, nil, err
	}
	return s, tr, nil
}

var _ transport.Conn = (*session.Session)(nil)
