package supernode

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

// RuntimeConfig configures the goroutines around a Core.
type RuntimeConfig struct {
	Core Config
	// SearchLifetime is how long a search stream stays open for hits from
	// the mesh before the supernode ends it.
	SearchLifetime time.Duration
	// LinkQueue is the bounded send queue of each neighbour link; a full
	// queue drops (and counts) instead of blocking.
	LinkQueue int
	// TickEvery is how often the core's Tick runs (mesh upkeep, expiry).
	TickEvery time.Duration
	Logger    *zap.Logger
	Now       func() time.Time
	// OnFirstHit, when set, is called once for each leaf search that gets a
	// hit, with the time from the query's arrival to its first hit sent
	// back (the supernode's time to first answer, for metrics).
	OnFirstHit func(time.Duration)
}

func (c RuntimeConfig) populate() RuntimeConfig {
	if c.SearchLifetime <= 0 {
		c.SearchLifetime = 10 * time.Second
	}
	if c.LinkQueue <= 0 {
		c.LinkQueue = 256
	}
	if c.TickEvery <= 0 {
		c.TickEvery = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Runtime runs a supernode role on a transport the node owns: it serves the
// streams the node hands it (leaf sessions, searches, mesh links) and dials
// neighbours itself.
type Runtime struct {
	cfg   RuntimeConfig
	log   *zap.Logger
	tr    transport.Transport
	hello func() proto.Hello

	mu       sync.Mutex
	core     *Core
	links    map[proto.PeerID]*link
	searches map[proto.QueryID]chan []proto.Hit
	leaves   map[proto.PeerID]*leafStream
	draining string // non-empty: refusing new leaves, for this reason
	reach    *reachState

	queueDrops atomic.Uint64
	// leafSessions counts leaf sessions being served, so Close can give
	// them a moment to deliver their goodbyes.
	leafSessions sync.WaitGroup
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

type link struct {
	info  proto.PeerInfo
	queue chan proto.Message
	done  chan struct{}
	once  sync.Once
}

func (l *link) close() { l.once.Do(func() { close(l.done) }) }

// leafStream is a leaf's control stream; sends on it are serialised.
type leafStream struct {
	mu   sync.Mutex
	st   *session.Stream
	addr string // where the leaf's connection comes from
}

// do runs f with the stream's writes to itself.
func (l *leafStream) do(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// evict ends a leaf's session whose slot was reclaimed: a goodbye, then
// the stream closes both ways (which ends its serveLeaf loop).
func (l *leafStream) evict(why string) {
	l.do(func() {
		_ = l.st.SetWriteDeadline(time.Now().Add(time.Second))
		_ = l.st.Send(&proto.Goodbye{Reason: why})
		_ = l.st.Close()
	})
	l.st.CancelRead(proto.CodeOK)
}

func (l *leafStream) send(m proto.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return l.st.Send(m)
}

// NewRuntime makes a supernode role for the node whose PeerInfo is self.
// hello returns the Hello to present when dialing neighbours. Start it with
// Start; stop it with Close.
func NewRuntime(cfg RuntimeConfig, tr transport.Transport, self proto.PeerInfo, hello func() proto.Hello) *Runtime {
	cfg = cfg.populate()
	return &Runtime{cfg: cfg, log: cfg.Logger, tr: tr, hello: hello, core: NewCore(cfg.Core, self),
		links: map[proto.PeerID]*link{}, searches: map[proto.QueryID]chan []proto.Hit{}, leaves: map[proto.PeerID]*leafStream{},
		reach: newReachState(cfg.Core.Reach.populate())}
}

// Start launches the tick loop; ctx ends it.
func (r *Runtime) Start(ctx context.Context) {
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.cfg.TickEvery)
		defer t.Stop()
		for {
			r.tick()
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// leafGoodbyeWait bounds how long Close waits for leaves to hang up after
// their goodbye (each hangs up as soon as it reads it).
const leafGoodbyeWait = 1500 * time.Millisecond

// Close stops the role and waits for every goroutine it started. Leaves are
// told goodbye first; Close waits up to leafGoodbyeWait for them to hang up,
// so the goodbyes are delivered before the node closes its transport.
func (r *Runtime) Close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Lock()
	for _, l := range r.links {
		l.close()
	}
	r.mu.Unlock()
	hungUp := make(chan struct{})
	go func() { r.leafSessions.Wait(); close(hungUp) }()
	select {
	case <-hungUp:
	case <-time.After(leafGoodbyeWait):
	}
	r.wg.Wait()
}

// With runs f on the core under the runtime's lock (status, shares).
func (r *Runtime) With(f func(c *Core)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.core)
}

// QueueDrops counts messages dropped because a neighbour's queue was full.
func (r *Runtime) QueueDrops() uint64 { return r.queueDrops.Load() }

func (r *Runtime) tick() {
	r.mu.Lock()
	dial, gossip := r.core.Tick(r.cfg.Now())
	r.dispatchLocked(gossip)
	r.mu.Unlock()
	for _, info := range dial {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.dialNeighbour(info)
		}()
	}
}

// dispatchLocked hands outs to links and local searches without blocking.
func (r *Runtime) dispatchLocked(outs []Out) {
	for _, o := range outs {
		if o.Local {
			if ch, ok := r.searches[o.Search]; ok {
				select {
				case ch <- o.Msg.(*proto.QueryHits).Hits:
				default:
					r.queueDrops.Add(1)
				}
			}
			continue
		}
		l, ok := r.links[o.To]
		if !ok {
			continue
		}
		select {
		case l.queue <- o.Msg:
		default:
			r.queueDrops.Add(1)
		}
	}
}

// HandleStream serves a stream the node accepted whose first message is for
// the supernode role. It reports false when the message is not one.
func (r *Runtime) HandleStream(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) bool {
	switch m := first.(type) {
	case *proto.Attach:
		r.serveLeaf(s, st, m)
	case *proto.Query:
		r.serveSearch(s, st, m)
	case *proto.PeerList:
		r.serveInboundMesh(s, st, m)
	case *proto.Reach:
		r.serveReach(s, st, m)
	case *proto.ConnectRequest:
		r.serveConnect(ctx, s, st, m)
	case *proto.RelayJoin:
		r.serveRelayJoin(s, st, m)
	default:
		return false
	}
	return true
}

// PeerInfoOf describes the peer of a session: its ID, the addresses from
// its hello with unspecified hosts replaced by the address it connected from.
func PeerInfoOf(s *session.Session, role proto.Role) proto.PeerInfo {
	return proto.PeerInfo{ID: s.RemotePeer(), Addrs: Advertised(s.Remote.ListenAddrs, s.RemoteAddr()),
		Role: role, Reachable: s.Remote.Reachable}
}

// Advertised replaces unspecified or missing hosts in addrs (0.0.0.0:7400,
// [::]:7400, :7400) with the host of observed.
func Advertised(addrs []string, observed net.Addr) []string {
	obsHost := ""
	if observed != nil {
		obsHost, _, _ = net.SplitHostPort(observed.String())
	}
	var out []string
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if obsHost == "" {
				continue
			}
			host = obsHost
		}
		out = append(out, net.JoinHostPort(host, port))
		if len(out) == proto.MaxAddrs {
			break
		}
	}
	return out
}

func (r *Runtime) serveLeaf(s *session.Session, st *session.Stream, m *proto.Attach) {
	info := PeerInfoOf(s, proto.RoleLeaf)
	r.mu.Lock()
	var redirect []proto.PeerInfo
	var err error
	var evictedLS *leafStream
	if r.draining != "" {
		redirect, err = r.core.redirects(proto.MaxPeers), proto.Errorf(proto.CodeRefused, "this supernode is %s", r.draining)
	} else {
		var evicted proto.PeerID
		redirect, evicted, err = r.core.AttachLeaf(r.cfg.Now(), info, int(m.Others))
		if !evicted.IsZero() {
			if evictedLS = r.leaves[evicted]; evictedLS != nil {
				delete(r.leaves, evicted)
			}
			r.log.Info("leaf slot reclaimed", zap.Stringer("leaf", evicted), zap.Stringer("for", info.ID))
		}
	}
	ls := &leafStream{st: st, addr: s.RemoteAddr().String()}
	if err == nil {
		r.leaves[info.ID] = ls
	}
	r.mu.Unlock()
	if evictedLS != nil {
		// Its slot went to this leaf, which has no other supernode: it is
		// told goodbye and keeps its other supernode.
		evictedLS.evict("slot given to a leaf with no other supernode")
	}
	if err != nil {
		_ = st.Send(&proto.AttachReply{Accepted: false, Reason: err.Error(), Redirect: redirect})
		st.Finish()
		return
	}
	if err := ls.send(&proto.AttachReply{Accepted: true}); err != nil {
		r.detach(info.ID, ls, "reply failed")
		st.CancelRead(proto.CodeInternal)
		return
	}
	r.log.Info("leaf attached", zap.Stringer("leaf", info.ID), zap.Strings("addrs", info.Addrs))
	r.leafSessions.Add(1)
	defer r.leafSessions.Done()
	reason := "connection ended"
	defer func() { r.detach(info.ID, ls, reason) }()
	// A leaf session ends when its stream or connection does.
	stop := context.AfterFunc(s.Context(), func() { st.CancelRead(proto.CodeOK) })
	defer stop()
	next := readAhead(st)
	defer next.stop()
	// When the role stops (the node shutting down), the leaf is told
	// goodbye, so it moves to another supernode at once instead of after
	// the idle timeout; it hangs up, which ends this loop. Writes from the
	// loop, a hand-off's Move and the goodbye are serialised (ls.do).
	write := ls.do
	bye := context.AfterFunc(r.ctx, func() {
		write(func() {
			_ = st.SetWriteDeadline(time.Now().Add(time.Second))
			_ = st.Send(&proto.Goodbye{Reason: "supernode shutting down"})
			_ = st.Close()
		})
	})
	defer bye()
	for {
		msg, err := next.recv()
		if err != nil {
			if err != io.EOF && proto.CodeOf(err) != proto.CodeOK {
				reason = err.Error()
				if errors.As(err, new(*proto.Error)) {
					write(func() { st.Fail(err) })
				}
			}
			write(st.Finish)
			return
		}
		// A session replaced by the leaf's newer one (a re-attach) or whose
		// slot was reclaimed ends here, so it never touches the index entry
		// that is no longer its own.
		r.mu.Lock()
		current := r.leaves[info.ID] == ls
		r.mu.Unlock()
		if !current {
			reason = "replaced"
			write(st.Finish)
			return
		}
		var problem string
		var answer proto.Message
		switch m := msg.(type) {
		case *proto.ShareAdd:
			r.mu.Lock()
			res, err := r.core.AddShares(info.ID, m.Entries)
			r.mu.Unlock()
			if err != nil {
				write(func() { st.Fail(err) })
				return
			}
			problem = res.Problem()
		case *proto.ShareRemove:
			r.mu.Lock()
			_, err := r.core.RemoveShares(info.ID, m.Refs)
			r.mu.Unlock()
			if err != nil {
				write(func() { st.Fail(err) })
				return
			}
		case *proto.LeafState:
			r.mu.Lock()
			r.core.SetLeafOthers(info.ID, int(m.Others))
			r.mu.Unlock()
		case *proto.Goodbye:
			reason = "leaf said goodbye: " + m.Reason
			write(st.Finish)
			return
		case *proto.Ping:
			answer = &proto.Pong{Nonce: m.Nonce}
		case *proto.PeerList:
			// A leaf asks for other supernodes (for its host cache and
			// for failover); what it sent is ignored.
			r.mu.Lock()
			answer = r.core.PeerList()
			r.mu.Unlock()
		default:
			problem = "unexpected " + m.Type().String() + " on a leaf session"
		}
		if problem != "" {
			// Not fatal: the leaf logs it and its other files stay indexed.
			answer = &proto.ErrorMsg{Code: proto.CodeBadRequest, Message: problem}
		}
		if answer != nil {
			_ = ls.send(answer)
		}
	}
}

// readAhead decodes a leaf stream's next frames in its own goroutine while
// the caller indexes the previous ones, so a share list is taken in at the
// pace of the slower of decoding and indexing, not of both added up.
type reader struct {
	msgs chan received
	done chan struct{}
	exit chan struct{}
	st   *session.Stream
}

type received struct {
	m   proto.Message
	err error
}

func readAhead(st *session.Stream) *reader {
	r := &reader{msgs: make(chan received, 2), done: make(chan struct{}), exit: make(chan struct{}), st: st}
	go func() {
		defer close(r.exit)
		for {
			m, err := st.Recv()
			select {
			case r.msgs <- received{m, err}:
			case <-r.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *reader) recv() (proto.Message, error) {
	x := <-r.msgs
	return x.m, x.err
}

// stop ends the read-ahead goroutine and waits for it; the stream's read side
// is cancelled (the caller has finished with it).
func (r *reader) stop() {
	close(r.done)
	r.st.CancelRead(proto.CodeOK)
	<-r.exit
}

func (r *Runtime) detach(id proto.PeerID, ls *leafStream, why string) {
	r.mu.Lock()
	n := 0
	if r.leaves[id] == ls {
		delete(r.leaves, id)
		n = r.core.DetachLeaf(r.cfg.Now(), id)
	}
	r.mu.Unlock()
	r.log.Info("leaf detached", zap.Stringer("leaf", id), zap.Int("files_removed", n), zap.String("why", why))
}

// HandOff is the first half of stepping down: the supernode stops taking
// leaves and tells each of its leaves to move (proto.Move with peers, the
// other supernodes to try), then waits until every leaf has detached (each
// attaches elsewhere first, then says goodbye) or ctx ends. It returns how
// many leaves were told and how many are still attached.
func (r *Runtime) HandOff(ctx context.Context, peers []proto.PeerInfo, reason string) (told, left int) {
	r.mu.Lock()
	r.draining = "stepping down: " + reason
	self := r.core.Info().ID
	// The bootstrap's list first (it knows whom has room now), then the
	// mesh neighbours with room.
	var list proto.List[proto.PeerInfo]
	seen := map[proto.PeerID]bool{self: true}
	for _, p := range append(slices.Clone(peers), r.core.redirects(proto.MaxPeers)...) {
		if !seen[p.ID] && len(list) < proto.MaxPeers {
			seen[p.ID] = true
			list = append(list, p)
		}
	}
	streams := make([]*leafStream, 0, len(r.leaves))
	for _, ls := range r.leaves {
		streams = append(streams, ls)
	}
	r.mu.Unlock()
	for _, ls := range streams {
		if err := ls.send(&proto.Move{Peers: list, Reason: reason}); err == nil {
			told++
		}
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.Lock()
		left = len(r.leaves)
		r.mu.Unlock()
		if left == 0 {
			return told, 0
		}
		select {
		case <-ctx.Done():
			return told, left
		case <-t.C:
		}
	}
}

func (r *Runtime) serveSearch(s *session.Session, st *session.Stream, q *proto.Query) {
	arrived := r.cfg.Now()
	hits, err := r.Search(s.Context(), s.RemotePeer(), *q)
	if err != nil {
		st.Fail(err)
		return
	}
	stopped := make(chan struct{})
	go func() { // the asker closes its side when done; notice it
		_, _ = io.Copy(io.Discard, st)
		close(stopped)
	}()
	defer func() { st.Finish(); <-stopped }()
	answered := false
	for {
		select {
		case batch, ok := <-hits:
			if !ok {
				if r.ctx.Err() != nil || s.Context().Err() != nil {
					// Not the search's natural end (the supernode or this
					// session is closing): tell the asker, so a leaf with
					// another supernode asks there.
					_ = st.Send(&proto.ErrorMsg{Code: proto.CodeShutdown, Message: "supernode shutting down"})
				}
				return
			}
			if err := st.Send(&proto.QueryHits{ID: q.ID, Hits: batch}); err != nil {
				return
			}
			if !answered && r.cfg.OnFirstHit != nil {
				r.cfg.OnFirstHit(r.cfg.Now().Sub(arrived))
			}
			answered = true
		case <-stopped:
			return
		}
	}
}

// Search starts a search for asker (a leaf, or the supernode's own ID) and
// returns batches of hits until the search lifetime ends, q.MaxResults is
// reached, or ctx ends.
func (r *Runtime) Search(ctx context.Context, asker proto.PeerID, q proto.Query) (<-chan []proto.Hit, error) {
	if q.ID == (proto.QueryID{}) {
		_, _ = rand.Read(q.ID[:])
	}
	ch := make(chan []proto.Hit, 64)
	r.mu.Lock()
	local, outs, err := r.core.StartSearch(r.cfg.Now(), asker, q)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.searches[q.ID] = ch
	r.dispatchLocked(outs)
	r.mu.Unlock()

	out := make(chan []proto.Hit, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(out)
		defer func() {
			r.mu.Lock()
			delete(r.searches, q.ID)
			r.core.EndSearch(q.ID)
			r.mu.Unlock()
		}()
		max := int(q.MaxResults)
		if max <= 0 {
			max = r.core.cfg.MaxResults
		}
		sent := 0
		send := func(b []proto.Hit) bool {
			b = b[:min(len(b), max-sent)]
			if len(b) == 0 {
				return sent < max
			}
			select {
			case out <- b:
				sent += len(b)
				return sent < max
			case <-ctx.Done():
				return false
			case <-r.ctx.Done():
				return false
			}
		}
		for len(local) > 0 {
			n := min(len(local), proto.MaxHitsPerFrame)
			if !send(local[:n]) {
				return
			}
			local = local[n:]
		}
		timer := time.NewTimer(r.cfg.SearchLifetime)
		defer timer.Stop()
		for {
			select {
			case b := <-ch:
				if !send(b) {
					return
				}
			case <-timer.C:
				return
			case <-ctx.Done():
				return
			case <-r.ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (r *Runtime) dialNeighbour(info proto.PeerInfo) {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	st, conn, err := r.openMesh(ctx, info)
	r.mu.Lock()
	kept := r.core.DialDone(r.cfg.Now(), info, err)
	r.mu.Unlock()
	if err != nil {
		r.log.Debug("mesh dial failed", zap.Stringer("peer", info.ID), zap.Error(err))
		return
	}
	if !kept {
		st.Finish()
		_ = conn.CloseWithError(proto.CodeOK, "duplicate link")
		return
	}
	r.runLink(info, st, conn)
	_ = conn.CloseWithError(proto.CodeOK, "link ended")
}

// openMesh dials info, proves it is who the bootstrap said, and opens a
// mesh stream (first message: our PeerList; the answer: theirs).
func (r *Runtime) openMesh(ctx context.Context, info proto.PeerInfo) (*session.Stream, transport.Conn, error) {
	var lastErr error
	for _, addr := range info.Addrs {
		c, err := r.tr.Dial(ctx, addr, info.ID)
		if err != nil {
			lastErr = err
			continue
		}
		s, err := session.Client(ctx, c, r.hello())
		if err != nil {
			_ = c.CloseWithError(proto.CodeOf(err), "hello failed")
			lastErr = err
			continue
		}
		st, err := s.Open(ctx)
		if err != nil {
			lastErr = err
			_ = c.CloseWithError(proto.CodeInternal, "")
			continue
		}
		r.mu.Lock()
		list := r.core.PeerList()
		r.mu.Unlock()
		if err := st.Send(list); err != nil {
			lastErr = err
			_ = c.CloseWithError(proto.CodeInternal, "")
			continue
		}
		reply, err := st.Recv()
		if err != nil {
			lastErr = err
			_ = c.CloseWithError(proto.CodeInternal, "")
			continue
		}
		switch m := reply.(type) {
		case *proto.PeerList:
			r.mu.Lock()
			r.core.Learn(r.cfg.Now(), m.Peers)
			r.mu.Unlock()
			return st, c, nil
		case *proto.ErrorMsg:
			lastErr = &proto.Error{Code: m.Code, Msg: m.Message}
		default:
			lastErr = proto.Errorf(proto.CodeProtocol, "mesh answer was %s", m.Type())
		}
		_ = c.CloseWithError(proto.CodeOK, "")
	}
	if lastErr == nil {
		lastErr = errors.New("no address to dial")
	}
	return nil, nil, lastErr
}

func (r *Runtime) serveInboundMesh(s *session.Session, st *session.Stream, m *proto.PeerList) {
	if s.Remote.Role != proto.RoleSupernode {
		st.Fail(proto.Errorf(proto.CodeRefused, "mesh links are for supernodes; this peer said it is a %s", s.Remote.Role))
		return
	}
	info := PeerInfoOf(s, proto.RoleSupernode)
	for _, p := range m.Peers {
		if p.ID == info.ID {
			info.Load = p.Load
		}
	}
	r.mu.Lock()
	r.core.Learn(r.cfg.Now(), m.Peers)
	err := r.core.AcceptNeighbour(r.cfg.Now(), info)
	var list *proto.PeerList
	if err == nil {
		list = r.core.PeerList()
	}
	r.mu.Unlock()
	if err != nil {
		st.Fail(err)
		return
	}
	if err := st.Send(list); err != nil {
		r.mu.Lock()
		r.core.NeighbourDown(r.cfg.Now(), info.ID)
		r.mu.Unlock()
		return
	}
	r.runLink(info, st, s.Conn)
}

// runLink carries queries, hits and peer lists on a mesh stream until either
// side ends it. Writes come from a bounded queue, so a slow neighbour never
// blocks the supernode.
func (r *Runtime) runLink(info proto.PeerInfo, st *session.Stream, conn transport.Conn) {
	l := &link{info: info, queue: make(chan proto.Message, r.cfg.LinkQueue), done: make(chan struct{})}
	r.mu.Lock()
	if old, ok := r.links[info.ID]; ok {
		old.close()
	}
	r.links[info.ID] = l
	r.mu.Unlock()
	r.log.Info("mesh link up", zap.Stringer("peer", info.ID), zap.Strings("addrs", info.Addrs))

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case m := <-l.queue:
				_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if err := st.Send(m); err != nil {
					l.close()
					return
				}
			case <-l.done:
				return
			}
		}
	}()
	stopRead := context.AfterFunc(r.ctx, func() { st.CancelRead(proto.CodeShutdown) })
	go func() {
		select {
		case <-l.done:
			st.CancelRead(proto.CodeOK)
		case <-conn.Context().Done():
		case <-writerDone:
		}
	}()
	for {
		msg, err := st.Recv()
		if err != nil {
			break
		}
		now := r.cfg.Now()
		r.mu.Lock()
		switch m := msg.(type) {
		case *proto.Query:
			r.dispatchLocked(r.core.MeshQuery(now, info.ID, m))
		case *proto.QueryHits:
			r.dispatchLocked(r.core.MeshHits(now, info.ID, m))
		case *proto.PeerList:
			r.core.Learn(now, m.Peers)
		}
		r.mu.Unlock()
	}
	l.close()
	<-writerDone
	stopRead()
	st.CancelWrite(proto.CodeOK)
	r.mu.Lock()
	if r.links[info.ID] == l {
		delete(r.links, info.ID)
		r.core.NeighbourDown(r.cfg.Now(), info.ID)
	}
	r.mu.Unlock()
	r.log.Info("mesh link down", zap.Stringer("peer", info.ID))
}
