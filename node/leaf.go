package node

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
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// attachment is a leaf's live session with its supernode.
type attachment struct {
	sn   proto.PeerInfo
	conn transport.Conn
	sess *session.Session
	st   *session.Stream
	at   time.Time

	mu      sync.Mutex
	pending []shares.Diff
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once
	why     string

	move     chan []proto.PeerInfo // the supernode is stepping down (proto.Move)
	searches sync.RWMutex          // held for reading by each search through it
}

func (a *attachment) push(d shares.Diff) {
	a.mu.Lock()
	a.pending = append(a.pending, d)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *attachment) close(why string) {
	a.once.Do(func() {
		a.mu.Lock()
		a.why = why
		a.mu.Unlock()
		close(a.done)
	})
}

// leafLoop keeps the node attached to a supernode: ask a bootstrap server,
// try the supernodes it names (and their redirects), upload the share list,
// then send changes until the session ends; then start again at once.
func (n *Node) leafLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	lastWarn := time.Time{}
	warn := func(msg string, fields ...zap.Field) {
		if time.Since(lastWarn) > 10*time.Second {
			lastWarn = time.Now()
			n.log.Warn(msg, fields...)
		}
	}
	for ctx.Err() == nil && n.Role() == proto.RoleLeaf {
		want := proto.RoleUnknown
		if n.cfg.Role == RoleLeaf {
			want = proto.RoleLeaf
		}
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, used, err := n.bootstrapClient().Join(jctx, n.cfg.Bootstraps, want)
		cancel()
		if err != nil {
			warn("cannot join the network yet", zap.Error(err))
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		n.mu.Lock()
		n.observed = reply.ObservedAddr
		n.mu.Unlock()
		if reply.Become == proto.RoleSupernode && n.cfg.Role == RoleAuto {
			n.becomeSupernode(ctx, "bootstrap "+used+" found no supernode with room")
			return
		}
		tried := map[proto.PeerID]bool{}
		queue := append([]proto.PeerInfo(nil), reply.Supernodes...)
		attached := false
		for len(queue) > 0 && ctx.Err() == nil && !attached {
			cand := queue[0]
			queue = queue[1:]
			if tried[cand.ID] || cand.ID == n.PeerID() {
				continue
			}
			tried[cand.ID] = true
			att, redirect, err := n.attach(ctx, cand)
			if err != nil {
				n.log.Debug("attach failed", zap.Stringer("supernode", cand.ID), zap.Error(err))
				queue = append(queue, redirect...)
				continue
			}
			attached = true
			backoff = 100 * time.Millisecond
			for att != nil { // a move hands over to the next attachment
				att = n.runAttachment(ctx, att)
			}
		}
		if !attached {
			warn("no supernode took this node yet; retrying", zap.Int("tried", len(tried)))
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// attach dials a supernode, asks to attach, and uploads every shared file.
func (n *Node) attach(ctx context.Context, sn proto.PeerInfo) (*attachment, []proto.PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conn transport.Conn
	var err error
	for _, addr := range sn.Addrs {
		if conn, err = n.tr.Dial(ctx, addr, sn.ID); err == nil {
			break
		}
	}
	if conn == nil {
		if err == nil {
			err = errors.New("no address")
		}
		return nil, nil, err
	}
	fail := func(err error) (*attachment, []proto.PeerInfo, error) {
		_ = conn.CloseWithError(proto.CodeOK, "")
		return nil, nil, err
	}
	s, err := session.Client(ctx, conn, n.hello())
	if err != nil {
		return fail(err)
	}
	st, err := s.Open(ctx)
	if err != nil {
		return fail(err)
	}
	n.scanMu.Lock() // no rescan between the snapshot and registering for diffs
	defer n.scanMu.Unlock()
	files := n.lib.Files()
	if err := st.Send(&proto.Attach{Files: uint32(len(files))}); err != nil {
		return fail(err)
	}
	m, err := st.Recv()
	if err != nil {
		return fail(err)
	}
	reply, ok := m.(*proto.AttachReply)
	if !ok {
		return fail(fmt.Errorf("supernode answered %s to Attach", m.Type()))
	}
	if !reply.Accepted {
		_, _, _ = fail(nil)
		return nil, reply.Redirect, fmt.Errorf("supernode %s refused: %s", sn.ID.Short(), reply.Reason)
	}
	_ = st.SetDeadline(time.Time{})
	for len(files) > 0 {
		k := min(len(files), proto.MaxShareBatch)
		if err := st.Send(&proto.ShareAdd{Entries: files[:k]}); err != nil {
			return fail(err)
		}
		files = files[k:]
	}
	sn.Addrs = supernode.Advertised(sn.Addrs, conn.RemoteAddr())
	att := &attachment{sn: sn, conn: conn, sess: s, st: st, at: time.Now(), wake: make(chan struct{}, 1), done: make(chan struct{}),
		move: make(chan []proto.PeerInfo, 1)}
	n.mu.Lock()
	if n.role != proto.RoleLeaf { // promoted while attaching: give the slot back
		n.mu.Unlock()
		_ = st.SetWriteDeadline(time.Now().Add(time.Second))
		_ = st.Send(&proto.Goodbye{Reason: "became a supernode"})
		return fail(errors.New("became a supernode while attaching"))
	}
	n.att = att
	n.mu.Unlock()
	n.note(fmt.Sprintf("attached to supernode %s at %v", sn.ID.Short(), sn.Addrs))
	return att, nil, nil
}

// runAttachment sends share changes and reads notices until the session
// ends, then detaches. On shutdown it says goodbye so the files vanish at
// once. When the supernode says it is stepping down (Move), the node
// attaches elsewhere first and returns the new attachment to run next.
func (n *Node) runAttachment(ctx context.Context, a *attachment) (next *attachment) {
	defer func() {
		n.mu.Lock()
		if n.att == a {
			n.att = nil
		}
		n.mu.Unlock()
		_ = a.conn.CloseWithError(proto.CodeOK, "detached")
		a.mu.Lock()
		why := a.why
		a.mu.Unlock()
		n.note(fmt.Sprintf("detached from supernode %s: %s", a.sn.ID.Short(), why))
	}()
	go func() {
		for {
			m, err := a.st.Recv()
			if err != nil {
				a.close("supernode session ended: " + errString(err))
				return
			}
			switch m := m.(type) {
			case *proto.ErrorMsg:
				n.log.Warn("supernode notice", zap.Stringer("supernode", a.sn.ID), zap.String("message", m.Message))
			case *proto.Move:
				n.log.Info("supernode is stepping down; moving", zap.Stringer("supernode", a.sn.ID), zap.String("reason", m.Reason))
				select {
				case a.move <- m.Peers:
				default:
				}
			case *proto.ConnectNotice:
				n.onConnectNotice(ctx, a, m)
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = a.st.SetWriteDeadline(time.Now().Add(time.Second))
			_ = a.st.Send(&proto.Goodbye{Reason: "node shutting down"})
			a.st.Finish()
			a.close("node shutting down")
			return nil
		case peers := <-a.move:
			if next := n.moveAttachment(ctx, a, peers, "supernode stepping down"); next != nil {
				return next
			}
		case <-a.done:
			return nil
		case <-a.conn.Context().Done():
			a.close("connection lost")
			return nil
		case <-a.wake:
			a.mu.Lock()
			diffs := a.pending
			a.pending = nil
			a.mu.Unlock()
			for _, d := range diffs {
				if err := sendDiff(a.st, d); err != nil {
					a.close("sending share changes: " + err.Error())
					return nil
				}
			}
		}
	}
}

func errString(err error) string {
	if err == io.EOF {
		return "closed by the supernode"
	}
	return err.Error()
}

// searchVia is where a search goes: the attachment (held for reading, so a
// move waits for the search to end) or else the node's own supernode role.
// A supernode stepping down is attached elsewhere before it stops serving:
// it searches through its new supernode.
func (n *Node) searchVia() (*supernode.Runtime, *attachment) {
	for {
		n.mu.Lock()
		sn, att := n.sn, n.att
		n.mu.Unlock()
		if att == nil {
			return sn, nil
		}
		att.searches.RLock()
		n.mu.Lock()
		still := n.att == att
		n.mu.Unlock()
		if still {
			return nil, att
		}
		att.searches.RUnlock() // it moved meanwhile: use the new one
	}
}

func sendDiff(st *session.Stream, d shares.Diff) error {
	rm := refs(d.Removed)
	for len(rm) > 0 {
		k := min(len(rm), proto.MaxShareBatch)
		if err := st.Send(&proto.ShareRemove{Refs: rm[:k]}); err != nil {
			return err
		}
		rm = rm[k:]
	}
	add := d.Added
	for len(add) > 0 {
		k := min(len(add), proto.MaxShareBatch)
		if err := st.Send(&proto.ShareAdd{Entries: add[:k]}); err != nil {
			return err
		}
		add = add[k:]
	}
	return nil
}

// Search runs a query through the node's supernode (or, on a supernode,
// through its own role) and sends each hit to fn as it arrives, until max
// hits, the timeout, or ctx ends. fn returning false stops early.
func (n *Node) Search(ctx context.Context, text string, max int, timeout time.Duration, fn func(proto.Hit) bool) error {
	parsed, err := supernode.ParseSearch(text)
	if err != nil {
		return proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	if max <= 0 || max > 1000 {
		max = 100
	}
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := proto.Query{Text: parsed.String(), MaxResults: uint16(max)}
	_, _ = rand.Read(q.ID[:])
	sn, att := n.searchVia()
	if att != nil {
		defer att.searches.RUnlock()
	}
	got := 0
	switch {
	case sn != nil:
		ch, err := sn.Search(ctx, n.PeerID(), q)
		if err != nil {
			return err
		}
		for batch := range ch {
			for _, h := range batch {
				got++
				if !fn(h) || got >= max {
					cancel()
				}
			}
		}
		return nil
	case att != nil:
		st, err := att.sess.Open(ctx)
		if err != nil {
			return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), err)
		}
		// Our write side stays open while we want hits; closing it ends the search.
		defer func() { _ = st.Close(); st.CancelRead(proto.CodeOK) }()
		stop := context.AfterFunc(ctx, func() { st.CancelRead(proto.CodeOK) })
		defer stop()
		if err := st.Send(&q); err != nil {
			return err
		}
		for got < max {
			m, err := st.Recv()
			if err != nil {
				if err == io.EOF || ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), err)
			}
			switch m := m.(type) {
			case *proto.QueryHits:
				for _, h := range m.Hits {
					got++
					if !fn(h) || got >= max {
						return nil
					}
				}
			case *proto.ErrorMsg:
				return &proto.Error{Code: m.Code, Msg: m.Message}
			}
		}
		return nil
	}
	return errors.New("not attached to a supernode yet; check `strata status` and the --bootstrap address")
}
