// Package overlaytest runs supernode roles and bare leaves on any
// transport, for tests and benchmarks that need the real protocol without
// whole nodes: a Host is what node does around a supernode.Runtime, a Leaf
// is the leaf's side of attach, share upload and search.
package overlaytest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// HelloFor is the hello a test peer presents.
func HelloFor(role proto.Role, tr transport.Transport) proto.Hello {
	return proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Role: role,
		ListenAddrs: []string{tr.Addr().String()}, Agent: "strata/overlaytest"}
}

// Host serves a supernode Runtime on a transport.
type Host struct {
	TR     transport.Transport
	RT     *supernode.Runtime
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewHost starts a supernode role on tr and accepts connections for it.
func NewHost(ctx context.Context, tr transport.Transport, cfg supernode.RuntimeConfig) *Host {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Host{TR: tr, cancel: cancel}
	self := proto.PeerInfo{ID: tr.LocalPeer(), Addrs: []string{tr.Addr().String()}}
	hello := func() proto.Hello { return HelloFor(proto.RoleSupernode, tr) }
	h.RT = supernode.NewRuntime(cfg, tr, self, hello)
	h.RT.Start(ctx)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				s, err := session.Server(ctx, c, hello())
				if err != nil {
					return
				}
				_ = s.Serve(ctx, cfg.Logger, 0, func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) {
					if !h.RT.HandleStream(ctx, s, st, first) {
						st.Fail(proto.Errorf(proto.CodeProtocol, "unexpected %s", first.Type()))
					}
				})
				_ = c.CloseWithError(proto.CodeOK, "")
			}()
		}
	}()
	return h
}

// Info is the host's PeerInfo.
func (h *Host) Info() proto.PeerInfo {
	var i proto.PeerInfo
	h.RT.With(func(c *supernode.Core) { i = c.Info() })
	return i
}

// Link makes h learn other, so its next tick dials it.
func (h *Host) Link(other *Host) {
	info := other.Info()
	h.RT.With(func(c *supernode.Core) { c.Learn(time.Now(), []proto.PeerInfo{info}) })
}

// HasNeighbour reports whether id is a mesh neighbour of h.
func (h *Host) HasNeighbour(id proto.PeerID) bool {
	ok := false
	h.RT.With(func(c *supernode.Core) { ok = c.IsNeighbour(id) })
	return ok
}

// Close stops the role and the accept loop (not the transport).
func (h *Host) Close() {
	h.cancel()
	h.RT.Close()
	h.wg.Wait()
}

// Leaf is a leaf's session with its supernode.
type Leaf struct {
	Sess *session.Session
	St   *session.Stream
}

// Attach dials sn from tr, attaches, uploads files and waits until the
// supernode has indexed them (a Ping sent after the shares is answered
// only after they were processed).
func Attach(ctx context.Context, tr transport.Transport, sn proto.PeerInfo, files []proto.FileEntry) (*Leaf, error) {
	c, err := tr.Dial(ctx, sn.Addrs[0], sn.ID)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Leaf, error) {
		_ = c.CloseWithError(proto.CodeOK, "")
		return nil, err
	}
	s, err := session.Client(ctx, c, HelloFor(proto.RoleLeaf, tr))
	if err != nil {
		return fail(err)
	}
	st, err := s.Open(ctx)
	if err != nil {
		return fail(err)
	}
	if r, err := supernode.AttachAndUpload(st, 0, files); err != nil || !r.Accepted {
		return fail(fmt.Errorf("attach refused: %v %+v", err, r))
	}
	if err := st.Send(&proto.Ping{Nonce: 1}); err != nil {
		return fail(err)
	}
	if m, err := st.Recv(); err != nil || m.Type() != proto.TypePong {
		return fail(errors.New("no pong after shares"))
	}
	return &Leaf{Sess: s, St: st}, nil
}

// Close ends the leaf's session.
func (l *Leaf) Close() { _ = l.Sess.CloseWithError(proto.CodeOK, "leaf closed") }

// Search sends a query and collects hits until the supernode ends the
// stream, timeout passes, or stop returns true for a hit. It returns the
// hits and when the first one arrived.
func (l *Leaf) Search(ctx context.Context, text string, timeout time.Duration, stop func(proto.Hit) bool) ([]proto.Hit, time.Duration, error) {
	start := time.Now()
	var first time.Duration
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := l.Sess.Open(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = st.Close(); st.CancelRead(proto.CodeOK) }()
	after := context.AfterFunc(ctx, func() { st.CancelRead(proto.CodeOK) })
	defer after()
	q := proto.Query{Text: text, MaxResults: 100}
	_, _ = rand.Read(q.ID[:])
	if err := st.Send(&q); err != nil {
		return nil, 0, err
	}
	var hits []proto.Hit
	for {
		m, err := st.Recv()
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return hits, first, nil
			}
			return hits, first, err
		}
		switch m := m.(type) {
		case *proto.QueryHits:
			if len(hits) == 0 {
				first = time.Since(start)
			}
			hits = append(hits, m.Hits...)
			for _, h := range m.Hits {
				if stop != nil && stop(h) {
					return hits, first, nil
				}
			}
		case *proto.ErrorMsg:
			return hits, first, &proto.Error{Code: m.Code, Msg: m.Message}
		}
	}
}
