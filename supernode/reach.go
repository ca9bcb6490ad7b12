package supernode

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
)

// ReachConfig bounds what a supernode does to connect its unreachable
// leaves: push and hole-punch notices, and relaying. Every limit is finite;
// zero fields take the defaults of DefaultReachConfig.
type ReachConfig struct {
	// MaxRelaySessions is how many relay sessions run at once.
	MaxRelaySessions int
	// RelaySessionRate caps one session (both directions together), bytes
	// per second; RelayTotalRate caps every session together.
	RelaySessionRate int64
	RelayTotalRate   int64
	// RelaySessionBytes ends a session once it has carried this many bytes;
	// RelayHourBytes is what the supernode relays in all in one clock hour
	// (new sessions are refused and running ones end beyond it).
	RelaySessionBytes int64
	RelayHourBytes    int64
	// ConnectRate and ConnectBurst rate-limit each leaf's ConnectRequests
	// (a token bucket: requests per second, and the burst).
	ConnectRate  float64
	ConnectBurst int
	// JoinTimeout is how long a relay request waits for the target to join.
	JoinTimeout time.Duration
	// PunchDelay is how far ahead both peers are told to dial.
	PunchDelay time.Duration
}

// DefaultReachConfig returns the defaults; they are stated only here.
func DefaultReachConfig() ReachConfig {
	return ReachConfig{
		MaxRelaySessions:  16,
		RelaySessionRate:  1 << 20,
		RelayTotalRate:    8 << 20,
		RelaySessionBytes: 256 << 20,
		RelayHourBytes:    10 << 30,
		ConnectRate:       1,
		ConnectBurst:      10,
		JoinTimeout:       5 * time.Second,
		PunchDelay:        300 * time.Millisecond,
	}
}

func (c ReachConfig) populate() ReachConfig {
	d := DefaultReachConfig()
	if c.MaxRelaySessions <= 0 {
		c.MaxRelaySessions = d.MaxRelaySessions
	}
	if c.RelaySessionRate <= 0 {
		c.RelaySessionRate = d.RelaySessionRate
	}
	if c.RelayTotalRate <= 0 {
		c.RelayTotalRate = d.RelayTotalRate
	}
	if c.RelaySessionBytes <= 0 {
		c.RelaySessionBytes = d.RelaySessionBytes
	}
	if c.RelayHourBytes <= 0 {
		c.RelayHourBytes = d.RelayHourBytes
	}
	if c.ConnectRate <= 0 {
		c.ConnectRate = d.ConnectRate
	}
	if c.ConnectBurst <= 0 {
		c.ConnectBurst = d.ConnectBurst
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = d.JoinTimeout
	}
	if c.PunchDelay <= 0 {
		c.PunchDelay = d.PunchDelay
	}
	return c
}

// Refusal reasons, the labels of ReachStats.Refused.
const (
	RefusedStranger     = "stranger" // the asker is not our leaf
	RefusedNotAttached  = "target_not_attached"
	RefusedRateLimited  = "rate_limited"
	RefusedRelayFull    = "relay_full"       // MaxRelaySessions reached
	RefusedOverQuota    = "relay_over_quota" // a session used its bytes
	RefusedBadRequest   = "bad_request"
	RefusedNoJoin       = "target_did_not_join"
	RefusedUnknownRelay = "unknown_relay_session"
)

// ReachStats are the supernode's push, punch and relay counters.
type ReachStats struct {
	Requests map[string]uint64 `json:"requests"` // by mode
	// Ticketed is how many of them came from peers that are not our leaves,
	// with a hit's ticket for the target.
	Ticketed      uint64            `json:"ticketed"`
	Refused       map[string]uint64 `json:"refused"` // by reason
	RelaySessions int               `json:"relay_sessions"`
	RelayedBytes  uint64            `json:"relayed_bytes"`
	Limits        ReachConfig       `json:"limits"`
}

type reachState struct {
	mu       sync.Mutex
	pending  map[uint64]*relaySession
	active   int
	askers   map[string]*askerBucket // by "leaf "+peer ID, or "ip "+a stranger's address
	requests map[string]uint64
	ticketed uint64
	refused  map[string]uint64
	total    *transfer.Pacer
	relayed  atomic.Uint64
	hour     time.Time // the clock hour hourUsed counts
	hourUsed int64
}

// takeHour counts n relayed bytes against the hourly quota and reports
// whether they fit (n = 0: whether any room is left).
func (rs *reachState) takeHour(now time.Time, n, limit int64) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if h := now.Truncate(time.Hour); !h.Equal(rs.hour) {
		rs.hour, rs.hourUsed = h, 0
	}
	if rs.hourUsed >= limit {
		return false
	}
	if rs.hourUsed+n > limit { // what does not fit ends the hour's relaying
		rs.hourUsed = limit
		return false
	}
	rs.hourUsed += n
	return true
}

type askerBucket struct {
	tokens float64
	last   time.Time
}

type relaySession struct {
	id     uint64
	target proto.PeerID
	joined chan *session.Stream
	done   chan struct{}
}

func newReachState(c ReachConfig) *reachState {
	return &reachState{pending: map[uint64]*relaySession{}, askers: map[string]*askerBucket{},
		requests: map[string]uint64{}, refused: map[string]uint64{}, total: transfer.NewPacer(c.RelayTotalRate)}
}

// ReachStats returns the push, punch and relay counters.
func (r *Runtime) ReachStats() ReachStats {
	rs := r.reach
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st := ReachStats{Requests: map[string]uint64{}, Refused: map[string]uint64{}, RelaySessions: rs.active,
		RelayedBytes: rs.relayed.Load(), Limits: r.core.cfg.Reach, Ticketed: rs.ticketed}
	for k, v := range rs.requests {
		st.Requests[k] = v
	}
	for k, v := range rs.refused {
		st.Refused[k] = v
	}
	return st
}

func (r *Runtime) refuse(st *session.Stream, reason string, err *proto.Error) {
	r.reach.mu.Lock()
	r.reach.refused[reason]++
	r.reach.mu.Unlock()
	r.log.Info("refused a reachability request", zap.String("reason", reason), zap.Error(err))
	st.Fail(err)
}

// allowAsker takes a token from the asker's bucket (key: "leaf "+its peer
// ID, or "ip "+a stranger's address, as peer IDs cost nothing to make).
// The buckets are bounded: idle ones are forgotten, and while every bucket
// is busy a new asker is refused.
func (r *Runtime) allowAsker(key string, now time.Time) bool {
	c := r.core.cfg.Reach
	rs := r.reach
	rs.mu.Lock()
	defer rs.mu.Unlock()
	b, ok := rs.askers[key]
	if !ok {
		if limit := 4*r.core.cfg.MaxLeaves + 1024; len(rs.askers) >= limit {
			for k, v := range rs.askers {
				if now.Sub(v.last).Seconds()*c.ConnectRate >= float64(c.ConnectBurst) {
					delete(rs.askers, k)
				}
			}
			if len(rs.askers) >= limit {
				return false
			}
		}
		b = &askerBucket{tokens: float64(c.ConnectBurst), last: now}
		rs.askers[key] = b
	}
	b.tokens = min(float64(c.ConnectBurst), b.tokens+now.Sub(b.last).Seconds()*c.ConnectRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// serveReach updates a leaf's reachability.
func (r *Runtime) serveReach(s *session.Session, st *session.Stream, m *proto.Reach) {
	r.mu.Lock()
	ok := r.core.SetLeafReach(s.RemotePeer(), m.Reachable)
	r.mu.Unlock()
	if !ok {
		r.refuse(st, RefusedStranger, proto.Errorf(proto.CodeRefused, "peer %s is not attached to this supernode", s.RemotePeer().Short()))
		return
	}
	_ = st.Send(&proto.Pong{})
	st.Finish()
}

// PushForSelf asks one of our leaves to dial this supernode at addr (a
// push): how a supernode downloads from a leaf of its own that cannot be
// dialled (it is nobody's leaf, so it cannot ask a supernode). It returns a
// not-found error when target is not our leaf.
func (r *Runtime) PushForSelf(target proto.PeerID, addr string) error {
	r.mu.Lock()
	ls := r.leaves[target]
	self := r.core.Info().ID
	r.mu.Unlock()
	if ls == nil {
		return proto.Errorf(proto.CodeNotFound, "peer %s is not a leaf of this supernode", target.Short())
	}
	r.reach.mu.Lock()
	r.reach.requests[proto.ConnectPush.String()]++
	r.reach.mu.Unlock()
	return ls.send(&proto.ConnectNotice{From: self, Mode: proto.ConnectPush, Addr: addr})
}

// serveConnect answers a peer that wants one of our leaves connected to
// it: push and punch send the target a notice on its leaf session; relay
// waits for the target to join, then carries both streams' bytes. The asker
// is our leaf too, or a stranger with the ticket of a hit we issued for the
// target (it found the target in a search, through any supernode).
func (r *Runtime) serveConnect(ctx context.Context, s *session.Session, st *session.Stream, m *proto.ConnectRequest) {
	asker := s.RemotePeer()
	c := r.core.cfg.Reach
	now := r.cfg.Now()
	r.mu.Lock()
	_, askerOK := r.leaves[asker]
	target, targetOK := r.leaves[m.Target]
	ticketOK := !askerOK && r.core.ValidTicket(now, m)
	r.mu.Unlock()
	key := "leaf " + asker.String()
	if !askerOK {
		host, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		key = "ip " + host
	}
	switch {
	case !askerOK && !ticketOK:
		r.refuse(st, RefusedStranger, proto.Errorf(proto.CodeRefused,
			"peer %s is not attached to this supernode and has no valid ticket for %s (a search hit's, good for %v): search again, or ask your own supernode",
			asker.Short(), m.Target.Short(), TicketLife))
		return
	case m.Mode < proto.ConnectPush || m.Mode > proto.ConnectRelay || m.Target == asker:
		r.refuse(st, RefusedBadRequest, proto.Errorf(proto.CodeBadRequest, "connect request: bad mode %s or target", m.Mode))
		return
	case !targetOK:
		r.refuse(st, RefusedNotAttached, proto.Errorf(proto.CodeNotFound,
			"peer %s is not attached to this supernode, which can push, punch or relay only to its own leaves", m.Target.Short()))
		return
	case !r.allowAsker(key, now):
		r.refuse(st, RefusedRateLimited, proto.Errorf(proto.CodeRateLimited,
			"too many connect requests from %s (%.0f a second, burst %d); try later", asker.Short(), c.ConnectRate, c.ConnectBurst))
		return
	}
	if ticketOK {
		r.reach.mu.Lock()
		r.reach.ticketed++
		r.reach.mu.Unlock()
	}
	r.reach.mu.Lock()
	r.reach.requests[m.Mode.String()]++
	r.reach.mu.Unlock()
	askerAddr := s.RemoteAddr().String()
	switch m.Mode {
	case proto.ConnectPush:
		if err := target.send(&proto.ConnectNotice{From: asker, Mode: m.Mode, Addr: askerAddr}); err != nil {
			st.Fail(proto.Errorf(proto.CodeInternal, "cannot reach %s's session: %v", m.Target.Short(), err))
			return
		}
		_ = st.Send(&proto.ConnectReply{Mode: m.Mode})
		st.Finish()
	case proto.ConnectPunch:
		delay := uint32(c.PunchDelay.Milliseconds())
		if err := target.send(&proto.ConnectNotice{From: asker, Mode: m.Mode, Addr: askerAddr, DelayMillis: delay}); err != nil {
			st.Fail(proto.Errorf(proto.CodeInternal, "cannot reach %s's session: %v", m.Target.Short(), err))
			return
		}
		_ = st.Send(&proto.ConnectReply{Mode: m.Mode, Addr: target.addr, DelayMillis: delay})
		st.Finish()
	case proto.ConnectRelay:
		r.relay(ctx, s, st, m.Target, target)
	}
}

func (r *Runtime) relay(ctx context.Context, s *session.Session, st *session.Stream, targetID proto.PeerID, target *leafStream) {
	c := r.core.cfg.Reach
	rs := r.reach
	var b [8]byte
	_, _ = rand.Read(b[:])
	sess := &relaySession{id: binary.BigEndian.Uint64(b[:]), target: targetID, joined: make(chan *session.Stream, 1), done: make(chan struct{})}
	if !rs.takeHour(r.cfg.Now(), 0, c.RelayHourBytes) {
		r.refuse(st, RefusedOverQuota, proto.Errorf(proto.CodeFull,
			"this supernode relayed its %d bytes for this hour (--relay-hour-bytes); try later", c.RelayHourBytes))
		return
	}
	rs.mu.Lock()
	if rs.active+len(rs.pending) >= c.MaxRelaySessions {
		rs.mu.Unlock()
		r.refuse(st, RefusedRelayFull, proto.Errorf(proto.CodeFull,
			"this supernode relays at most %d sessions at once (--relay-max-sessions); try later", c.MaxRelaySessions))
		return
	}
	rs.pending[sess.id] = sess
	rs.mu.Unlock()
	defer close(sess.done)
	unpend := func() bool {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		_, was := rs.pending[sess.id]
		delete(rs.pending, sess.id)
		return was
	}
	if err := target.send(&proto.ConnectNotice{From: s.RemotePeer(), Mode: proto.ConnectRelay, Session: sess.id}); err != nil {
		unpend()
		st.Fail(proto.Errorf(proto.CodeInternal, "cannot reach %s's session: %v", targetID.Short(), err))
		return
	}
	t := time.NewTimer(c.JoinTimeout)
	defer t.Stop()
	var other *session.Stream
	select {
	case other = <-sess.joined:
	case <-t.C:
	case <-s.Context().Done():
	case <-r.ctx.Done():
	}
	if other == nil {
		if unpend() {
			r.refuse(st, RefusedNoJoin, proto.Errorf(proto.CodeTimeout, "peer %s did not join the relay session within %v", targetID.Short(), c.JoinTimeout))
			return
		}
		other = <-sess.joined // joined just now
	}
	rs.mu.Lock()
	rs.active++
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		rs.active--
		rs.mu.Unlock()
	}()
	reply := &proto.ConnectReply{Mode: proto.ConnectRelay, Session: sess.id, MaxBps: uint64(c.RelaySessionRate), MaxBytes: uint64(c.RelaySessionBytes)}
	if st.Send(reply) != nil || other.Send(reply) != nil {
		st.CancelRead(proto.CodeInternal)
		other.CancelRead(proto.CodeInternal)
		return
	}
	r.log.Info("relaying", zap.Stringer("from", s.RemotePeer()), zap.Stringer("to", targetID), zap.Uint64("session", sess.id))
	err := r.pipe(ctx, st, other)
	var pe *proto.Error
	if errors.As(err, &pe) && pe.Code == proto.CodeFull {
		rs.mu.Lock()
		rs.refused[RefusedOverQuota]++
		rs.mu.Unlock()
	}
	r.log.Info("relay session ended", zap.Uint64("session", sess.id), zap.Error(err))
}

// pipe copies bytes both ways, paced by the session's and the supernode's
// rate caps, until either end closes or the session's byte quota is used.
func (r *Runtime) pipe(ctx context.Context, a, b *session.Stream) error {
	c := r.core.cfg.Reach
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	pace := transfer.NewPacer(c.RelaySessionRate)
	var used atomic.Int64
	errc := make(chan error, 2)
	copyOne := func(dst, src *session.Stream) {
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Stream.Read(buf)
			if n > 0 {
				if used.Add(int64(n)) > c.RelaySessionBytes {
					errc <- proto.Errorf(proto.CodeFull, "relay session used its %d bytes (--relay-session-bytes)", c.RelaySessionBytes)
					return
				}
				if !r.reach.takeHour(r.cfg.Now(), int64(n), c.RelayHourBytes) {
					errc <- proto.Errorf(proto.CodeFull, "this supernode relayed its %d bytes for this hour (--relay-hour-bytes)", c.RelayHourBytes)
					return
				}
				if pace.Wait(ctx, n) != nil || r.reach.total.Wait(ctx, n) != nil {
					errc <- ctx.Err()
					return
				}
				if _, werr := dst.Stream.Write(buf[:n]); werr != nil {
					errc <- werr
					return
				}
				r.reach.relayed.Add(uint64(n))
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				errc <- err
				return
			}
		}
	}
	go copyOne(b, a)
	go copyOne(a, b)
	err := <-errc
	code := proto.CodeOK
	if err != nil {
		code = proto.CodeOf(err)
	}
	for _, s := range []*session.Stream{a, b} {
		if err != nil {
			_ = s.SetWriteDeadline(time.Now().Add(time.Second))
		}
		s.CancelRead(code)
		s.CancelWrite(code)
	}
	cancel()
	<-errc
	return err
}

// serveRelayJoin hands the target's stream to the waiting relay request.
func (r *Runtime) serveRelayJoin(s *session.Session, st *session.Stream, m *proto.RelayJoin) {
	rs := r.reach
	rs.mu.Lock()
	sess, ok := rs.pending[m.Session]
	if ok && sess.target == s.RemotePeer() {
		delete(rs.pending, m.Session)
	}
	rs.mu.Unlock()
	if !ok || sess.target != s.RemotePeer() {
		r.refuse(st, RefusedUnknownRelay, proto.Errorf(proto.CodeNotFound, "no relay session %d waits for peer %s", m.Session, s.RemotePeer().Short()))
		return
	}
	sess.joined <- st
	<-sess.done // the request's handler runs the relay
}
