package bootstrap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

// The server's side of promotion (package promotion has the policy): nodes
// check in (CheckIn) every Config.CheckIn; the server dials each back at its
// advertised address, answers its bandwidth probes, and every heartbeat runs
// the planner over what it measured. Each CheckInReply carries the plan's
// demand for that node and its dial-back result.

// maxDialBacks caps the dial-backs in progress; a check-in finding them all
// busy is dialled back at a later check-in.
const maxDialBacks = 32

// probeChunk is the write size of a probe's download direction.
const probeChunk = 32 << 10

// probeTimeout bounds one probe on the server.
const probeTimeout = 20 * time.Second

// tracked is a node the server knows from its check-ins.
type tracked struct {
	role      proto.Role
	auto      bool
	declining bool
	addrs     []string
	first     time.Time // first check-in of the current run
	last      time.Time // last check-in
	reach     proto.Reachability
	reachAt   time.Time // when the last dial-back ended
	fails     int       // dial-backs failed in a row
	dialing   bool
	up, down  float64 // the last probe's rates, bytes per second
	probedAt  time.Time
}

// NodeStatus is a node the promotion planner knows, in Status.
type NodeStatus struct {
	PeerID    proto.PeerID       `json:"peer_id"`
	Role      proto.Role         `json:"role"`
	Auto      bool               `json:"auto"`
	Declining bool               `json:"declining,omitempty"`
	Addrs     []string           `json:"addrs"`
	Reachable proto.Reachability `json:"reachable"`
	// UpBps and DownBps are what the server measured in the node's last
	// bandwidth probe (0: none yet).
	UpBps   float64 `json:"up_bps"`
	DownBps float64 `json:"down_bps"`
	// SeenS is how long the server has known the node without a break.
	SeenS float64 `json:"seen_s"`
	// Ask is what the current plan asks of the node.
	Ask promotion.Ask `json:"ask"`
}

// PromotionStatus is the planner's view, in Status.
type PromotionStatus struct {
	LeavesPerSupernode float64        `json:"leaves_per_supernode"`
	Headroom           float64        `json:"headroom"`
	Plan               promotion.Plan `json:"plan"`
	Nodes              []NodeStatus   `json:"nodes"`
}

// maxStatusNodes bounds the nodes listed in Status.
const maxStatusNodes = 1000

// checkIn answers a CheckIn. It is called under s.mu.
func (s *Server) checkIn(sess *session.Session, observed string, m *proto.CheckIn) (*proto.CheckInReply, error) {
	now := s.cfg.Now()
	id := sess.RemotePeer()
	t := s.nodes[id]
	if t == nil {
		if !s.requests.Allow(now, observed) {
			return nil, proto.Errorf(proto.CodeRateLimited,
				"too many nodes checking in from %s; retry in a few seconds", observed)
		}
		if len(s.nodes) >= s.cfg.MaxNodes {
			s.forgetNodes(now)
		}
		if len(s.nodes) >= s.cfg.MaxNodes {
			return nil, proto.Errorf(proto.CodeFull,
				"this bootstrap server already tracks %d nodes for promotion, its limit; check in with another bootstrap server", s.cfg.MaxNodes)
		}
		t = &tracked{first: now}
		s.nodes[id] = t
	}
	t.last = now
	t.role, t.auto, t.declining = proto.RoleLeaf, m.Auto, m.Declining
	if m.Role == proto.RoleSupernode {
		t.role = proto.RoleSupernode
	} else if s.reg.Remove(id) {
		// A supernode says it is a leaf again: it can only lower its own
		// standing, so it is believed, and it leaves the join lists at once.
		s.log.Info("supernode deregistered: it checked in as a leaf", zap.Stringer("peer", id))
	}
	addrs := normalizeAddrs(sess.Remote.ListenAddrs, observed)
	if !slices.Equal(addrs, t.addrs) {
		t.addrs, t.reachAt = addrs, time.Time{} // a new address is dialled again
	}
	if !t.dialing && (t.reachAt.IsZero() || now.Sub(t.reachAt) >= s.cfg.DialBackEvery) {
		s.startDialBack(id, t)
	}
	d := s.plan.Demand(id)
	return &proto.CheckInReply{
		Ask: uint8(d.Ask), AcceptYoung: d.AcceptYoung,
		Supernodes: uint32(max(0, d.Supernodes)), Need: uint32(max(0, d.Need)), Leaves: uint32(max(0, d.Leaves)),
		Reachable: t.reach, CheckInMillis: uint32(s.cfg.CheckIn / time.Millisecond),
	}, nil
}

// startDialBack dials the node back at its advertised addresses, from the
// dial-back transport, in a goroutine of the server's. Called under s.mu.
func (s *Server) startDialBack(id proto.PeerID, t *tracked) {
	tr := s.dialTransport()
	if tr == nil {
		return
	}
	select {
	case s.dialSlots <- struct{}{}:
	default:
		return // all busy: a later check-in retries
	}
	t.dialing = true
	addrs := slices.Clone(t.addrs)
	if !s.spawn(func(ctx context.Context) {
		defer func() { <-s.dialSlots }()
		reach := s.dialBack(ctx, tr, id, addrs)
		s.mu.Lock()
		if t := s.nodes[id]; t != nil {
			s.noteDialBack(id, t, reach)
		}
		s.mu.Unlock()
	}) {
		<-s.dialSlots
		t.dialing = false
	}
}

// noteDialBack records a dial-back's result, with hysteresis: a node
// becomes unreachable only after dialBackFailures failures in a row (one
// lost handshake on a busy host proves little; until then it keeps what it
// was), and a failure is retried at the next check-in. Called under s.mu.
func (s *Server) noteDialBack(id proto.PeerID, t *tracked, reach proto.Reachability) {
	t.dialing = false
	if reach == proto.ReachUnknown { // the server is closing
		return
	}
	now := s.cfg.Now()
	t.reachAt = now
	if reach == proto.ReachUnreachable {
		t.fails++
		if t.fails < dialBackFailures {
			t.reachAt = time.Time{} // again at the next check-in
			return
		}
	} else {
		t.fails = 0
	}
	if t.reach != reach {
		s.log.Info("dial-back", zap.Stringer("peer", id), zap.Strings("addrs", t.addrs), zap.Stringer("reachable", reach))
	}
	t.reach = reach
}

// dialBackFailures is how many dial-backs in a row must fail before a node
// counts as unreachable.
const dialBackFailures = 3

// dialBack reports whether a fresh connection to one of addrs reaches the
// node id: a QUIC handshake proving the peer ID, then the session hello.
func (s *Server) dialBack(ctx context.Context, tr transport.Transport, id proto.PeerID, addrs []string) proto.Reachability {
	for _, addr := range addrs {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.DialBackTimeout)
		c, err := tr.Dial(dctx, addr, id)
		if err == nil {
			_, err = session.Client(dctx, c, s.hello)
			_ = c.CloseWithError(proto.CodeOK, "dial-back done")
		}
		cancel()
		if ctx.Err() != nil {
			return proto.ReachUnknown
		}
		if err == nil {
			return proto.ReachPublic
		}
		s.log.Debug("dial-back failed", zap.Stringer("peer", id), zap.String("addr", addr), zap.Error(err))
	}
	return proto.ReachUnreachable
}

// forgetNodes drops the nodes that stopped checking in long ago (their
// measurements with them). Called under s.mu.
func (s *Server) forgetNodes(now time.Time) {
	for id, t := range s.nodes {
		if now.Sub(t.last) > s.cfg.CheckIn*forgetAfter {
			delete(s.nodes, id)
		}
	}
}

// A node is counted (as a leaf, a candidate) while it has checked in
// within countAfter check-in intervals: a few late check-ins on a busy
// host must not make the leaf count, and with it the demand, jump. What
// the server measured of it is kept for forgetAfter intervals, so a node
// that was slow to check in for a while is not probed and dialled back
// again.
const (
	countAfter  = 10
	forgetAfter = 30
)

// counted reports whether t checked in recently enough to count.
func (s *Server) counted(now time.Time, t *tracked) bool {
	return now.Sub(t.last) <= s.cfg.CheckIn*countAfter
}

// replan runs the planner over what the server knows. Called under s.mu.
func (s *Server) replan(now time.Time) {
	s.forgetNodes(now)
	var n promotion.Network
	registered := map[proto.PeerID]bool{}
	for _, e := range s.reg.entries {
		if !s.reg.live(e, now) {
			continue
		}
		registered[e.id] = true
		sn := promotion.Supernode{ID: e.id, Leaves: int(e.load.Leaves), Pinned: true}
		if t := s.nodes[e.id]; t != nil {
			sn.Measured, sn.Pinned = s.measured(now, t), !t.auto
		}
		n.Supernodes = append(n.Supernodes, sn)
	}
	for id, t := range s.nodes {
		if registered[id] || t.role == proto.RoleSupernode || !s.counted(now, t) {
			continue
		}
		n.Leaves++
		if t.auto && !t.probedAt.IsZero() {
			n.Candidates = append(n.Candidates, promotion.Candidate{ID: id, Measured: s.measured(now, t), Declined: t.declining})
		}
	}
	// Map order is random; the planner breaks ties by ID, but keep its
	// input stable anyway.
	slices.SortFunc(n.Candidates, func(a, b promotion.Candidate) int { return slices.Compare(a.ID[:], b.ID[:]) })
	old := s.plan
	s.plan = s.planner.Plan(now, n)
	if !sameAsks(old.StepUp, s.plan.StepUp) || !sameAsks(old.StepDown, s.plan.StepDown) {
		pl := s.plan
		s.log.Info("promotion plan", zap.Int("leaves", pl.Leaves), zap.Int("supernodes", pl.Supernodes),
			zap.Int("need", pl.Need), zap.Int("keep", pl.Keep), zap.Any("step_up", pl.StepUp),
			zap.Any("step_down", pl.StepDown), zap.String("reason", pl.Reason))
	}
}

func sameAsks(a, b []promotion.Ranked) bool {
	return slices.EqualFunc(a, b, func(x, y promotion.Ranked) bool { return x.ID == y.ID })
}

func (s *Server) measured(now time.Time, t *tracked) promotion.Measured {
	return promotion.Measured{Reachable: t.reach, UpBps: t.up, DownBps: t.down, Seen: now.Sub(t.first)}
}

// promotionStatus is the planner's view for Status. Called under s.mu.
func (s *Server) promotionStatus(now time.Time) *PromotionStatus {
	ps := &PromotionStatus{LeavesPerSupernode: s.cfg.Promotion.LeavesPerSupernode, Headroom: s.cfg.Promotion.Headroom,
		Plan: s.plan, Nodes: []NodeStatus{}}
	for id, t := range s.nodes {
		if len(ps.Nodes) == maxStatusNodes {
			break
		}
		role := t.role
		if e, ok := s.reg.byID[id]; ok && s.reg.live(e, now) {
			role = proto.RoleSupernode
		}
		ps.Nodes = append(ps.Nodes, NodeStatus{PeerID: id, Role: role, Auto: t.auto, Declining: t.declining,
			Addrs: slices.Clone(t.addrs), Reachable: t.reach, UpBps: t.up, DownBps: t.down,
			SeenS: now.Sub(t.first).Seconds(), Ask: s.plan.Demand(id).Ask})
	}
	slices.SortFunc(ps.Nodes, func(a, b NodeStatus) int { return slices.Compare(a.PeerID[:], b.PeerID[:]) })
	return ps
}

// serveProbe answers a bandwidth probe: it reads the node's bytes and times
// them (the node's upload), then sends as many and times until the node says
// it has them all (the node's download). Only nodes that checked in or
// registered are answered, within the ProbeLimiter's budget.
func (s *Server) serveProbe(sess *session.Session, st *session.Stream, m *proto.Probe) {
	id := sess.RemotePeer()
	now := s.cfg.Now()
	s.mu.Lock()
	_, known := s.nodes[id]
	if e, ok := s.reg.byID[id]; ok && s.reg.live(e, now) {
		known = true
	}
	s.mu.Unlock()
	if known && !s.requests.Allow(now, sess.RemoteAddr().String()) {
		st.Fail(proto.Errorf(proto.CodeRateLimited, "too many promotion requests from %s; retry in a minute", sess.RemoteAddr()))
		return
	}
	grant, err := s.probes.Acquire(now, id, known, int64(m.Bytes))
	if err != nil {
		st.Fail(err)
		return
	}
	defer grant.Done()
	up, down, err := probeServe(st, grant.Bytes)
	if err != nil {
		s.log.Debug("bandwidth probe failed", zap.Stringer("peer", id), zap.Error(err))
		if errors.As(err, new(*proto.Error)) {
			st.Fail(err)
			return
		}
		st.CancelWrite(proto.CodeTimeout)
		st.CancelRead(proto.CodeTimeout)
		return
	}
	st.Finish()
	s.mu.Lock()
	if t := s.nodes[id]; t != nil {
		t.up, t.down, t.probedAt = blendRate(t.up, up), blendRate(t.down, down), s.cfg.Now()
	}
	s.mu.Unlock()
	s.log.Debug("bandwidth probe", zap.Stringer("peer", id), zap.Int64("bytes", grant.Bytes),
		zap.Float64("up_bps", up), zap.Float64("down_bps", down))
}

// probeServe runs the server's half of a probe of n bytes each way.
//
// The node's upload is timed from the grant to its last byte, so every
// delay (the round trip, a busy host) can only make it look slower, never
// faster; the first quarter is not counted, as the burst an upload cap's
// token bucket lets through at once (64 KB in Strata's uploader, a quarter
// of a full probe). The bytes must repeat the grant's nonce.
func probeServe(st *session.Stream, n int64) (up, down float64, err error) {
	_ = st.SetDeadline(time.Now().Add(probeTimeout))
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	nonce := binary.BigEndian.Uint64(nb[:])
	if err := st.Send(&proto.ProbeGrant{Bytes: uint32(n), Nonce: nonce}); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	want := probePattern(nonce, int(min(n, probeChunk)))
	got := make([]byte, len(want))
	for off := int64(0); off < n; {
		k := min(n-off, int64(len(got)))
		if _, err := io.ReadFull(st, got[:k]); err != nil {
			return 0, 0, err
		}
		if !bytes.Equal(got[:k], want[:k]) {
			return 0, 0, proto.Errorf(proto.CodeBadRequest, "probe bytes at offset %d do not repeat the grant's nonce", off)
		}
		off += k
	}
	up = rate(n-n/4, time.Since(start))
	if err := st.Send(&proto.ProbeResult{UpBps: uint64(up), Bytes: uint32(n)}); err != nil {
		return 0, 0, err
	}
	start = time.Now()
	buf := make([]byte, min(n, probeChunk))
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := st.Write(buf[:k]); err != nil {
			return 0, 0, err
		}
		left -= k
	}
	msg, err := st.Recv()
	if err != nil {
		return 0, 0, err
	}
	if _, ok := msg.(*proto.ProbeDone); !ok {
		return 0, 0, proto.Errorf(proto.CodeProtocol, "probe: expected ProbeDone, got %s", msg.Type())
	}
	return up, rate(n, time.Since(start)), nil
}

// probePattern is size bytes of nonce, big-endian, over and over. Chunks
// of a probe are multiples of 8 bytes long, so every chunk starts with a
// whole copy.
func probePattern(nonce uint64, size int) []byte {
	b := make([]byte, size+8)
	for i := 0; i < size; i += 8 {
		binary.BigEndian.PutUint64(b[i:], nonce)
	}
	return b[:size]
}

// blendRate folds a probe's rate into the last. A probe can come out too
// low (a busy host, a congested path) but not higher than the link
// carries (it is timed from the grant), so a higher rate replaces the last
// and a lower one pulls it only halfway down: a rate that really fell
// shows after a few probes.
func blendRate(old, sample float64) float64 {
	if sample >= old {
		return sample
	}
	return (old + sample) / 2
}

func rate(n int64, d time.Duration) float64 {
	return float64(n) / max(d, time.Millisecond).Seconds()
}

// Probe runs a bandwidth probe of about size bytes each way with the
// bootstrap server at addr (one the node has joined or checked in with).
// Every write of the node's bytes first calls pace (the node's upload cap),
// so a cap shows in the result. up is the server's measurement of the
// node's upload, down the node's own of its download.
func (c *Client) Probe(ctx context.Context, addr string, size int, pace func(ctx context.Context, n int) error) (up, down float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	sess, err := c.session(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	st, err := sess.Open(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer st.CancelRead(proto.CodeOK)
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	if err := st.Send(&proto.Probe{Bytes: uint32(max(0, size))}); err != nil {
		return 0, 0, err
	}
	msg, err := st.Recv()
	if err != nil {
		return 0, 0, err
	}
	var grant *proto.ProbeGrant
	switch m := msg.(type) {
	case *proto.ProbeGrant:
		grant = m
	case *proto.ErrorMsg:
		return 0, 0, &proto.Error{Code: m.Code, Msg: m.Message}
	default:
		return 0, 0, proto.Errorf(proto.CodeProtocol, "answered Probe with %s", msg.Type())
	}
	n := int64(grant.Bytes)
	if n <= 1 || n > int64(max(size, 1)) {
		return 0, 0, proto.Errorf(proto.CodeProtocol, "probe grant of %d bytes for %d asked", n, size)
	}
	buf := probePattern(grant.Nonce, int(min(n, probeChunk)))
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if err := pace(ctx, int(k)); err != nil {
			return 0, 0, err
		}
		if _, err := st.Write(buf[:k]); err != nil {
			return 0, 0, err
		}
		left -= k
	}
	msg, err = st.Recv()
	if err != nil {
		return 0, 0, err
	}
	res, ok := msg.(*proto.ProbeResult)
	if !ok {
		return 0, 0, proto.Errorf(proto.CodeProtocol, "probe: expected ProbeResult, got %s", msg.Type())
	}
	if int64(res.Bytes) != n {
		return 0, 0, proto.Errorf(proto.CodeProtocol, "probe: server sends %d bytes, %d were granted", res.Bytes, n)
	}
	start := time.Now()
	if _, err := io.CopyN(io.Discard, st, n); err != nil {
		return 0, 0, err
	}
	down = rate(n, time.Since(start))
	if err := st.Send(&proto.ProbeDone{}); err != nil {
		return 0, 0, err
	}
	_ = st.Close()
	return float64(res.UpBps), down, nil
}

// CheckIn sends a CheckIn to the bootstrap servers in order and returns the
// first reply and the address that gave it.
func (c *Client) CheckIn(ctx context.Context, bootstraps []string, m *proto.CheckIn) (*proto.CheckInReply, string, error) {
	var errs []error
	for _, addr := range dedupe(bootstraps) {
		reply, err := c.request(ctx, addr, AttemptTimeout, m)
		if err == nil {
			if r, ok := reply.(*proto.CheckInReply); ok {
				return r, addr, nil
			}
			err = proto.Errorf(proto.CodeProtocol, "answered CheckIn with %s", reply.Type())
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, "", errors.New("check-in: no bootstrap server addresses; set --bootstrap")
	}
	return nil, "", &allFailedError{op: "check-in", tried: len(errs), of: len(bootstraps), errs: errs}
}
