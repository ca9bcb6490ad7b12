package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// attachment is one of a leaf's live sessions with a supernode. It ends
// (close) when the connection is lost, the supernode ends the session, the
// node shuts down or becomes a supernode, or something asks the leaf to
// leave this supernode (a supernode moving its leaves); the attachment
// manager (attach.go) then refills the set.
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
	leaving bool // ended by the leaf on purpose: say goodbye
	// moving is the reason the supernode gave for asking its leaves to
	// move (proto.Move: it is stepping down); "" otherwise. A moving
	// attachment no longer counts, so the leaf attaches elsewhere first and
	// then leaves it (make-before-break).
	moving string
	// othersTold is how many other supernodes answered the leaf when it
	// last told this one (proto.Attach, proto.LeafState).
	othersTold int
	// reach is the reachability last told to this supernode (reachTold).
	reach     proto.Reachability
	reachTold bool

	// Health, for choosing where searches go.
	pingNonce uint64
	pingSent  time.Time     // zero when no ping is outstanding
	rtt       time.Duration // smoothed round-trip time of pings; 0 before the first
	failures  int           // searches through it that failed since the last that worked
}

// Health upkeep on an attachment.
const (
	// attachPingEvery is how often a leaf pings each supernode on its
	// attach stream to measure the round trip.
	attachPingEvery = 500 * time.Millisecond
	// attachPingTimeout marks a supernode unresponsive when a ping is
	// unanswered this long: searches avoid it (and abandon a search on it
	// that has no hits yet) before the connection's idle timeout ends it.
	attachPingTimeout = time.Second
	// searchSuspectMin is the least a search waits on an unanswered ping
	// before it tries another supernode.
	searchSuspectMin = 250 * time.Millisecond
	// peerListEvery is how often a leaf asks its supernodes for other
	// supernodes, to refresh its host cache.
	peerListEvery = 30 * time.Second
	// unresponsivePenalty ranks an unresponsive attachment after every
	// responsive one; failurePenalty counts each failed search.
	unresponsivePenalty = time.Hour
	failurePenalty      = 100 * time.Millisecond
)

// score ranks attachments for searches: lower is healthier.
func (a *attachment) score(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.rtt + time.Duration(a.failures)*failurePenalty
	if a.unresponsiveLocked(now) {
		s += unresponsivePenalty
	}
	return s
}

func (a *attachment) unresponsive(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unresponsiveLocked(now)
}

// suspect reports whether a search on the attachment that has no hits yet
// should be given up and sent elsewhere: the connection is gone, or a ping
// is unanswered for ten round trips (at least searchSuspectMin, at most
// attachPingTimeout). Cheaper than waiting: a wrong guess costs one more
// query on the other supernode.
func (a *attachment) suspect(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	wait := min(max(10*a.rtt, searchSuspectMin), attachPingTimeout)
	return (!a.pingSent.IsZero() && now.Sub(a.pingSent) > wait) || a.conn.Context().Err() != nil || isClosed(a.done)
}

func (a *attachment) unresponsiveLocked(now time.Time) bool {
	return (!a.pingSent.IsZero() && now.Sub(a.pingSent) > attachPingTimeout) || a.conn.Context().Err() != nil || a.moving != ""
}

// moveRequested records that the supernode asked its leaves to move.
func (a *attachment) moveRequested(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if reason == "" {
		reason = "supernode stepping down"
	}
	a.moving = reason
}

// movingWhy is the supernode's reason for asking the leaf to move, or "".
func (a *attachment) movingWhy() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.moving
}

// searched records the outcome of a search through the attachment.
func (a *attachment) searched(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failures++
	} else {
		a.failures = 0
	}
}

// pong records the answer to the outstanding ping.
func (a *attachment) pong(nonce uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pingSent.IsZero() || nonce != a.pingNonce {
		return
	}
	sample := now.Sub(a.pingSent)
	a.pingSent = time.Time{}
	if a.rtt == 0 {
		a.rtt = sample
	} else {
		a.rtt = (7*a.rtt + sample) / 8
	}
}

// nextPing returns the ping to send, or nil while one is outstanding.
func (a *attachment) nextPing(now time.Time) *proto.Ping {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.pingSent.IsZero() {
		return nil
	}
	a.pingNonce++
	a.pingSent = now
	return &proto.Ping{Nonce: a.pingNonce}
}

func (a *attachment) status(now time.Time) AttachedStatus {
	a.mu.Lock()
	rtt, failures := a.rtt, a.failures
	a.mu.Unlock()
	return AttachedStatus{Supernode: a.sn, SinceS: now.Sub(a.at).Seconds(), RTTMS: float64(rtt.Microseconds()) / 1000,
		Responsive: !a.unresponsive(now), SearchFailures: failures}
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

// leave ends the attachment on purpose: the leaf says goodbye, so the
// supernode drops its files at once, and the manager refills the set. It is
// how a surplus attachment is shed, and how a supernode's request that its
// leaves move elsewhere is to be honoured.
func (a *attachment) leave(why string) { a.end(why, true) }

// close ends the attachment because its session did (or the node is
// shutting down, which says goodbye itself).
func (a *attachment) close(why string) { a.end(why, false) }

// end records why the attachment ended (the first reason wins) and wakes
// its goroutine.
func (a *attachment) end(why string, leaving bool) {
	a.once.Do(func() {
		a.mu.Lock()
		a.why, a.leaving = why, leaving
		a.mu.Unlock()
		close(a.done)
	})
}

// errRefused marks an attach that the supernode answered with a refusal
// (full, draining), as opposed to one that failed to reach it.
var errRefused = errors.New("refused")

// attach dials a supernode, asks to attach, and uploads every shared file.
func (n *Node) attach(ctx context.Context, sn proto.PeerInfo) (*attachment, []proto.PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conn transport.Conn
	var err error
	for _, addr := range sn.Addrs {
		dctx, cancel := context.WithTimeout(ctx, attachDialTimeout)
		conn, err = n.tr.Dial(dctx, addr, sn.ID)
		cancel()
		if err == nil {
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
	others := n.liveOthers(nil, time.Now())
	reply, err := supernode.AttachAndUpload(st, others, files)
	if err != nil {
		return fail(err)
	}
	if !reply.Accepted {
		_, _, _ = fail(nil)
		return nil, reply.Redirect, fmt.Errorf("supernode %s %w: %s", sn.ID.Short(), errRefused, reply.Reason)
	}
	_ = st.SetDeadline(time.Time{})
	sn.Addrs = supernode.Advertised(sn.Addrs, conn.RemoteAddr())
	att := &attachment{sn: sn, conn: conn, sess: s, st: st, at: time.Now(), wake: make(chan struct{}, 1), done: make(chan struct{}),
		othersTold: others}
	n.mu.Lock()
	if n.role != proto.RoleLeaf || ctx.Err() != nil { // became a supernode, or shutting down, meanwhile
		n.mu.Unlock()
		_ = st.SetWriteDeadline(time.Now().Add(time.Second))
		_ = st.Send(&proto.Goodbye{Reason: "no longer a leaf"}) // give the slot back at once
		return fail(errors.New("no longer a leaf"))
	}
	n.atts = append(n.atts, att)
	count := len(n.atts)
	n.mu.Unlock()
	n.hosts.Add(time.Now(), proto.PeerInfo{ID: sn.ID, Addrs: sn.Addrs, Role: proto.RoleSupernode, Load: sn.Load})
	n.note(fmt.Sprintf("attached to supernode %s at %v (%d of %d)", sn.ID.Short(), sn.Addrs, count, n.wantSupernodes()))
	return att, nil, nil
}

// liveOthers counts the leaf's attachments other than except whose
// supernodes answer (not unresponsive, not moving).
func (n *Node) liveOthers(except *attachment, now time.Time) int {
	n.mu.Lock()
	atts := slices.Clone(n.atts)
	n.mu.Unlock()
	c := 0
	for _, a := range atts {
		if a != except && !a.unresponsive(now) {
			c++
		}
	}
	return c
}

// runAttachment sends share changes, pings and peer-list requests, and
// reads the supernode's answers, until the session ends; then it detaches.
// On shutdown it says goodbye so the files vanish at once.
func (n *Node) runAttachment(ctx context.Context, a *attachment) {
	defer func() {
		n.removeAttachment(a)
		_ = a.conn.CloseWithError(proto.CodeOK, "detached")
		a.mu.Lock()
		why := a.why
		a.mu.Unlock()
		n.note(fmt.Sprintf("detached from supernode %s: %s", a.sn.ID.Short(), why))
	}()
	readerDone := make(chan struct{})
	defer func() { a.st.CancelRead(proto.CodeOK); <-readerDone }()
	go func() {
		defer close(readerDone)
		for {
			m, err := a.st.Recv()
			if err != nil {
				a.close("supernode session ended: " + errString(err))
				return
			}
			switch m := m.(type) {
			case *proto.Pong:
				a.pong(m.Nonce, time.Now())
			case *proto.PeerList:
				n.hosts.Add(time.Now(), m.Peers...)
			case *proto.Move:
				// The supernode is stepping down: its suggestions go first
				// in the host cache, and the leaf loop attaches elsewhere
				// before leaving this one.
				n.log.Info("supernode is stepping down; moving", zap.Stringer("supernode", a.sn.ID), zap.String("reason", m.Reason))
				n.hosts.Add(time.Now(), m.Peers...)
				a.moveRequested(m.Reason)
			case *proto.Goodbye:
				a.close("supernode said goodbye: " + m.Reason)
				return
			case *proto.ErrorMsg:
				n.log.Warn("supernode notice", zap.Stringer("supernode", a.sn.ID), zap.String("message", m.Message))
			case *proto.ConnectNotice:
				n.onConnectNotice(ctx, a, m)
			}
		}
	}()
	ping := time.NewTicker(attachPingEvery)
	defer ping.Stop()
	nextPeers := time.Now() // ask for the supernode's peer list at once
	for {
		var send []proto.Message
		select {
		case <-ctx.Done():
			a.close("node shutting down")
			_ = a.st.SetWriteDeadline(time.Now().Add(time.Second))
			_ = a.st.Send(&proto.Goodbye{Reason: "node shutting down"})
			a.st.Finish()
			return
		case <-a.done:
			a.mu.Lock()
			leaving, why := a.leaving, a.why
			a.mu.Unlock()
			if leaving {
				_ = a.st.SetWriteDeadline(time.Now().Add(time.Second))
				_ = a.st.Send(&proto.Goodbye{Reason: why})
				a.st.Finish()
			}
			return
		case <-a.conn.Context().Done():
			a.close("connection lost")
			return
		case now := <-ping.C:
			if p := a.nextPing(now); p != nil {
				send = append(send, p)
			}
			if o := n.liveOthers(a, now); o != a.othersTold { // only this goroutine touches othersTold
				a.othersTold = o
				send = append(send, &proto.LeafState{Others: uint8(min(o, 255))})
			}
			if !now.Before(nextPeers) {
				nextPeers = now.Add(peerListEvery)
				// An empty PeerList on the attach stream asks for the supernode's.
				send = append(send, &proto.PeerList{})
			}
		case <-a.wake:
			a.mu.Lock()
			diffs := a.pending
			a.pending = nil
			a.mu.Unlock()
			for _, d := range diffs {
				if err := sendDiff(a.st, d); err != nil {
					a.close("sending share changes: " + err.Error())
					return
				}
			}
		}
		for _, m := range send {
			_ = a.st.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := a.st.Send(m); err != nil {
				a.close("sending to the supernode: " + err.Error())
				return
			}
		}
		_ = a.st.SetWriteDeadline(time.Time{})
	}
}

func errString(err error) string {
	if err == io.EOF {
		return "closed by the supernode"
	}
	return err.Error()
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

// Search runs a query through the node's supernodes (or, on a supernode,
// through its own role) and sends each hit to fn as it arrives, until max
// hits, the timeout, or ctx ends. fn returning false stops early. A leaf
// sends the query to its healthiest attachment; when that search fails
// before any hit (stream error, connection lost, supernode unresponsive) it
// is retried once, with a fresh timeout, on the next attachment. The same
// file from the same holder is reported once, though a leaf with several
// supernodes is indexed at each.
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
	type key struct {
		holder proto.PeerID
		cid    proto.ContentID
		name   string
	}
	seen := map[key]bool{}
	got := 0
	// emit reports whether the search wants more hits.
	emit := func(h proto.Hit) bool {
		k := key{h.Holder.ID, h.Entry.ContentID, h.Entry.Name}
		if seen[k] {
			return true
		}
		seen[k] = true
		got++
		return fn(h) && got < max
	}
	q := proto.Query{Text: parsed.String(), MaxResults: uint16(max)}
	n.mu.Lock()
	sn := n.sn
	n.mu.Unlock()
	if sn != nil {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, _ = rand.Read(q.ID[:])
		ch, err := sn.Search(ctx, n.PeerID(), q)
		if err != nil {
			return err
		}
		for batch := range ch {
			for _, h := range batch {
				if !emit(h) {
					cancel()
				}
			}
		}
		return nil
	}
	atts := n.attachments()
	if len(atts) == 0 {
		return errors.New("not attached to a supernode yet; check `strata status` and the --bootstrap address")
	}
	var errs []error
	tries := atts[:min(2, len(atts))]
	for i, att := range tries {
		_, _ = rand.Read(q.ID[:]) // a retry is a new query: the mesh may have seen the first
		before := got
		err := n.searchVia(ctx, att, q, timeout, emit, i+1 < len(tries))
		att.searched(err)
		if code := proto.CodeOf(err); err == nil || got > before || ctx.Err() != nil ||
			code == proto.CodeBadRequest || code == proto.CodeRateLimited {
			// Done, or failed after hits (a retry would repeat them), or
			// an answer about the query or the asker (bad query, rate limit)
			// that another supernode would give too.
			return err
		}
		errs = append(errs, err)
		if i+1 < len(tries) {
			n.searchRetries.Add(1)
			n.log.Info("search failed before any hit; retrying on another supernode",
				zap.Stringer("supernode", att.sn.ID), zap.Error(err))
		}
	}
	if len(errs) == 2 {
		return fmt.Errorf("%v; retried: %w", errs[0], errs[1])
	}
	return errs[0]
}

// errUnresponsive ends a search on a supernode that stopped answering pings.
var errUnresponsive = errors.New("supernode stopped answering")

// searchVia runs q on one attachment until the timeout, ctx's end, or emit
// wanting no more. When another supernode could take the search (retry), it
// gives up early, with an error, if the supernode stops answering pings
// before any hit arrived; with none, a late ping is no reason to give up.
func (n *Node) searchVia(ctx context.Context, att *attachment, q proto.Query, timeout time.Duration, emit func(proto.Hit) bool, retry bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := att.sess.Open(ctx)
	if err != nil {
		return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), err)
	}
	// Our write side stays open while we want hits; closing it ends the search.
	defer func() { _ = st.Close(); st.CancelRead(proto.CodeOK) }()
	stop := context.AfterFunc(ctx, func() { st.CancelRead(proto.CodeOK) })
	defer stop()
	var mu sync.Mutex
	hits, abandoned := 0, false
	watchDone := make(chan struct{})
	defer func() { <-watchDone }()
	go func() { // abandon the search if the supernode goes silent before any hit
		defer close(watchDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				mu.Lock()
				give := retry && hits == 0 && att.suspect(now)
				abandoned = abandoned || give
				mu.Unlock()
				if give {
					st.CancelRead(proto.CodeOK)
					return
				}
			}
		}
	}()
	defer cancel() // runs first: ends the watcher
	if err := st.Send(&q); err != nil {
		return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), err)
	}
	for {
		m, err := st.Recv()
		if err != nil {
			mu.Lock()
			gaveUp := abandoned
			mu.Unlock()
			switch {
			case gaveUp:
				return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), errUnresponsive)
			case ctx.Err() != nil:
				return nil
			case err == io.EOF:
				if hits == 0 && (isClosed(att.done) || att.conn.Context().Err() != nil) {
					return fmt.Errorf("search via supernode %s: ended as the supernode went away", att.sn.ID.Short())
				}
				return nil
			}
			return fmt.Errorf("search via supernode %s: %w", att.sn.ID.Short(), err)
		}
		switch m := m.(type) {
		case *proto.QueryHits:
			mu.Lock()
			hits += len(m.Hits)
			mu.Unlock()
			for _, h := range m.Hits {
				if !emit(h) {
					return nil
				}
			}
		case *proto.ErrorMsg:
			return &proto.Error{Code: m.Code, Msg: m.Message}
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
