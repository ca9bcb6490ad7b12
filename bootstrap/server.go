package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

// maxRequestFrame caps a request's body. Bootstrap requests are small (a
// Register with eight addresses is under 300 bytes), so the server does not
// accept the default 1 MiB frames.
const maxRequestFrame = 16 << 10

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("bootstrap server closed")

// Server runs a Registry on transports. It takes connections, not
// addresses: Serve accepts from any transport.Transport (quicnet in the
// daemon, memnet in tests).
type Server struct {
	cfg   Config
	id    proto.PeerID
	log   *zap.Logger
	hello proto.Hello
	conns chan struct{} // one token per connection being served

	mu      sync.Mutex // guards reg, topo, nodes, plan, planner, dialTr
	reg     *Registry
	topo    *topology
	nodes   map[proto.PeerID]*tracked // nodes checking in, for promotion
	planner *promotion.Planner
	plan    promotion.Plan
	dialTr  transport.Transport // dial-backs come from it

	probes    *promotion.ProbeLimiter
	requests  *promotion.RequestLimiter
	dialSlots chan struct{}

	reqs requestCounts

	life   sync.Mutex // guards closed and wg.Add against Close
	closed bool
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a server for the bootstrap node id. It starts nothing; call
// Serve. Unset fields of cfg take their defaults; invalid ones are an error.
func New(cfg Config, id proto.PeerID) (*Server, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg, err := NewRegistry(cfg)
	if err != nil {
		return nil, err
	}
	pcfg := cfg.Promotion
	pcfg.Logger = cfg.Logger.Named("promotion")
	planner, err := promotion.NewPlanner(pcfg)
	if err != nil {
		return nil, err
	}
	probes, err := promotion.NewProbeLimiter(cfg.Probes)
	if err != nil {
		return nil, err
	}
	requests, err := promotion.NewRequestLimiter(cfg.Requests)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg,
		id:  id,
		log: cfg.Logger,
		hello: proto.Hello{
			MinVersion: proto.MinVersion,
			MaxVersion: proto.MaxVersion,
			Role:       proto.RoleBootstrap,
			Agent:      cfg.Agent,
		},
		conns:     make(chan struct{}, cfg.MaxConns),
		reg:       reg,
		topo:      newTopology(),
		nodes:     map[proto.PeerID]*tracked{},
		planner:   planner,
		probes:    probes,
		requests:  requests,
		dialSlots: make(chan struct{}, maxDialBacks),
		dialTr:    cfg.DialBack,
		base:      base,
		cancel:    cancel,
	}, nil
}

// Serve accepts connections from tr and answers their requests until ctx is
// cancelled or Close is called (it then returns nil, after every goroutine
// it started has ended) or tr fails to accept (it returns the error). It
// also expires silent supernodes every heartbeat interval. Serve may run on
// several transports at once; they share one registry.
func (s *Server) Serve(ctx context.Context, tr transport.Transport) error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.life.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	s.mu.Lock()
	if s.dialTr == nil {
		s.dialTr = tr
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait

	wg.Add(1)
	go func() {
		defer wg.Done()
		s.expireLoop(ctx)
	}()

	s.log.Info("bootstrap server accepting", zap.Stringer("addr", tr.Addr()), zap.Stringer("peer_id", s.id))
	for {
		c, err := tr.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bootstrap: accept on %s: %w", tr.Addr(), err)
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.log.Warn("too many connections; refusing one", zap.Int("max_conns", s.cfg.MaxConns),
				zap.Stringer("remote", c.RemoteAddr()))
			_ = c.CloseWithError(proto.CodeFull, "bootstrap server has too many connections; try another bootstrap server")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.conns }()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) expireLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		dropped := s.reg.Expire(s.cfg.Now())
		s.topo.observe(s.cfg.Now(), s.reg.Snapshot(s.cfg.Now()))
		s.replan(s.cfg.Now())
		s.mu.Unlock()
		for _, id := range dropped {
			s.log.Info("supernode expired (missed its heartbeats)", zap.Stringer("peer", id))
		}
	}
}

// serveConn runs the hello and then answers the connection's streams until
// it closes or ctx ends.
func (s *Server) serveConn(ctx context.Context, c transport.Conn) {
	log := s.log.With(zap.Stringer("peer", c.RemotePeer()), zap.Stringer("remote", c.RemoteAddr()))
	sess, err := session.Server(ctx, c, s.hello)
	if err != nil {
		log.Debug("hello failed", zap.Error(err))
		_ = c.CloseWithError(proto.CodeOf(err), "hello failed")
		return
	}
	// Closing the connection when ctx ends unblocks streams still waiting
	// for their first frame, so sess.Serve can return.
	shut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shut)
		_ = c.CloseWithError(proto.CodeShutdown, "bootstrap server shutting down")
	})
	slots := make(chan struct{}, s.cfg.MaxRequestsPerConn)
	err = sess.Serve(ctx, log, maxRequestFrame, func(ctx context.Context, sess *session.Session, st *session.Stream, first proto.Message) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			st.Fail(proto.Errorf(proto.CodeRateLimited,
				"more than %d requests at once on one connection; wait for the answers before sending more", s.cfg.MaxRequestsPerConn))
			return
		}
		if p, ok := first.(*proto.Probe); ok {
			s.serveProbe(sess, st, p)
			return
		}
		s.handle(log, sess, st, first)
	})
	if stop() {
		_ = c.CloseWithError(proto.CodeOK, "done")
	} else {
		<-shut
	}
	log.Debug("connection ended", zap.Error(err))
}

// handle answers one request: one message in, one reply out.
func (s *Server) handle(log *zap.Logger, sess *session.Session, st *session.Stream, first proto.Message) {
	reply, err := s.answer(sess, first)
	s.reqs.count(first.Type(), err == nil)
	if err != nil {
		log.Debug("request refused", zap.Stringer("type", first.Type()), zap.Error(err))
		st.Fail(err)
		return
	}
	_ = st.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := st.Send(reply); err != nil {
		log.Debug("cannot send reply", zap.Stringer("type", reply.Type()), zap.Error(err))
		st.CancelWrite(proto.CodeTimeout)
		st.CancelRead(proto.CodeTimeout)
		return
	}
	st.Finish()
}

// answer is the request dispatch, under the registry lock.
func (s *Server) answer(sess *session.Session, first proto.Message) (proto.Message, error) {
	observed := sess.RemoteAddr().String()
	switch m := first.(type) {
	case *proto.JoinRequest:
		if m.Role > proto.RoleSupernode {
			return nil, proto.Errorf(proto.CodeBadRequest, "JoinRequest with role %s; join as leaf, supernode or unknown (auto)", m.Role)
		}
		// An auto node is not promoted at join: the promotion planner asks
		// the best measured candidates to step up (CheckIn).
		s.mu.Lock()
		reply := s.reg.Join(s.cfg.Now(), sess.RemotePeer(), m.Role, observed)
		s.mu.Unlock()
		return &reply, nil
	case *proto.CheckIn:
		if m.Role > proto.RoleSupernode {
			return nil, proto.Errorf(proto.CodeBadRequest, "CheckIn with role %s; check in as leaf or supernode", m.Role)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.checkIn(sess, observed, m)
	case *proto.Register:
		if sess.Remote.Role != proto.RoleSupernode {
			return nil, proto.Errorf(proto.CodeRefused,
				"Register is accepted only from a supernode, and this connection's hello said role %s; reconnect with role supernode", sess.Remote.Role)
		}
		addrs := m.Addrs
		if len(addrs) == 0 {
			addrs = sess.Remote.ListenAddrs
		}
		s.mu.Lock()
		reply, err := s.reg.Register(s.cfg.Now(), sess.RemotePeer(), addrs, observed, m.Load)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return &reply, nil
	case *proto.Topology:
		if sess.Remote.Role != proto.RoleSupernode {
			return nil, proto.Errorf(proto.CodeRefused, "Topology is accepted only from a supernode")
		}
		s.mu.Lock()
		s.topo.record(sess.RemotePeer(), m)
		s.mu.Unlock()
		return &proto.Pong{}, nil
	default:
		return nil, proto.Errorf(proto.CodeProtocol, "a bootstrap server does not answer %s; it answers JoinRequest, Register, Topology, CheckIn and Probe", first.Type())
	}
}

// Status is what the server knows now.
func (s *Server) Status() Status {
	s.mu.Lock()
	now := s.cfg.Now()
	st := s.reg.Snapshot(now)
	st.Promotion = s.promotionStatus(now)
	s.mu.Unlock()
	st.PeerID = s.id
	st.Role = proto.RoleBootstrap
	return st
}

// dialTransport is the transport dial-backs are made from. Called under s.mu.
func (s *Server) dialTransport() transport.Transport { return s.dialTr }

// spawn runs f in a goroutine that Close waits for, with a context that
// Close cancels; it reports false (and runs nothing) after Close.
func (s *Server) spawn(f func(ctx context.Context)) bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.base)
	}()
	return true
}

// Close stops every Serve call and waits for all of their goroutines.
func (s *Server) Close() error {
	s.life.Lock()
	s.closed = true
	s.life.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// requestCounts counts the requests a server answered and refused, by
// message type. Only known types reach handle, so the map stays small.
type requestCounts struct {
	mu sync.Mutex
	n  map[requestKey]uint64
}

type requestKey struct {
	t  proto.MsgType
	ok bool
}

func (r *requestCounts) count(t proto.MsgType, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[requestKey]uint64{}
	}
	r.n[requestKey{t, ok}]++
}

func (r *requestCounts) each(f func(t proto.MsgType, ok bool, n uint64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.n {
		f(k.t, k.ok, n)
	}
}
