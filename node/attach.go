package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// A leaf keeps Config.Supernodes attachments (KaZaA leaves had one,
// Gnutella leaves keep 3 to 5). Each attachment holds the leaf's whole share
// list and gets every change, so losing one supernode costs no search: the
// others still index the files and answer queries. The manager below keeps
// the set full: when one ends (connection lost, supernode gone, or the
// supernode asking the leaf to move; see attachment.close) it refills from
// the host cache first and the bootstrap servers second.

// Attachment timings.
const (
	// attachDialTimeout bounds dialing one address of a candidate, so a dead
	// supernode in the host cache costs little.
	attachDialTimeout = 2 * time.Second
	// lostHold keeps a supernode the leaf just lost out of the candidates
	// for a while: it is probably dead, and the bootstrap still lists it
	// until its registration expires.
	lostHold = 5 * time.Second
	// maxAttachRetry caps the wait before a failing candidate is tried again.
	maxAttachRetry = 30 * time.Second
	// refusedHold is how long a supernode that refused the leaf (full,
	// draining) waits before it is asked again: it is alive, and its slots
	// come and go, so the wait does not grow.
	refusedHold = 5 * time.Second
	// attachCheckEvery is how often a full set is checked for supernodes
	// that stopped answering.
	attachCheckEvery = 250 * time.Millisecond
	// fillBackoffMax caps the wait between rounds that found no new supernode.
	fillBackoffMax = 5 * time.Second
	// freshFor is how recent a host-cache entry must be to be tried in
	// random order with the others; older ones are tried after, newest first.
	freshFor = 10 * time.Minute
)

// attachPlan decides which supernodes a leaf tries next. It is plain data
// (time is passed in), safe for concurrent use: the manager picks, the
// attachment goroutines report what happened.
type attachPlan struct {
	mu    sync.Mutex
	rng   *rand.Rand
	fails map[proto.PeerID]*attachFail
}

type attachFail struct {
	count   int
	retryAt time.Time
	refused bool // the last attempt was answered with a refusal
}

func newAttachPlan(seed uint64) *attachPlan {
	return &attachPlan{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), fails: map[proto.PeerID]*attachFail{}}
}

// order arranges host-cache entries for trying: recently seen supernodes
// with room first in random order (so that leaves spread), then recent full
// ones, then the rest newest first. seen gives each entry's last sighting.
func (p *attachPlan) order(now time.Time, cands []proto.PeerInfo, seen []time.Time) []proto.PeerInfo {
	type c struct {
		info  proto.PeerInfo
		group int
		key   float64
		seen  time.Time
	}
	p.mu.Lock()
	cs := make([]c, len(cands))
	for i, info := range cands {
		g := 2
		if now.Sub(seen[i]) < freshFor {
			g = 1
			if info.Load.Free() > 0 || info.Load.Capacity == 0 {
				g = 0
			}
		}
		cs[i] = c{info: info, group: g, key: p.rng.Float64(), seen: seen[i]}
	}
	p.mu.Unlock()
	slices.SortStableFunc(cs, func(a, b c) int {
		if a.group != b.group {
			return a.group - b.group
		}
		if a.group < 2 {
			if a.key < b.key {
				return -1
			}
			if a.key > b.key {
				return 1
			}
			return 0
		}
		return b.seen.Compare(a.seen)
	})
	out := make([]proto.PeerInfo, len(cs))
	for i := range cs {
		out[i] = cs[i].info
	}
	return out
}

// pick returns up to n candidates to try now: in the order given, without
// duplicates, without those skip rejects (self, already attached), and
// without those waiting after a failure. A leaf with no supernode left
// (urgent) asks again at once the supernodes that only refused it: it now
// has a claim on a slot that a leaf with another supernode holds (see
// supernode.Core.AttachLeaf).
func (p *attachPlan) pick(now time.Time, cands []proto.PeerInfo, skip func(proto.PeerID) bool, n int, urgent bool) []proto.PeerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []proto.PeerInfo
	seen := map[proto.PeerID]bool{}
	for _, c := range cands {
		if len(out) >= n {
			break
		}
		if seen[c.ID] || c.ID.IsZero() || skip(c.ID) {
			continue
		}
		seen[c.ID] = true
		if f := p.fails[c.ID]; f != nil && now.Before(f.retryAt) && !(urgent && f.refused) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// failed records a refused or unreachable candidate: it waits 1 s, doubling
// per failure up to maxAttachRetry.
func (p *attachPlan) failed(now time.Time, id proto.PeerID) {
	p.hold(now, id, false, func(count int) time.Duration { return min(time.Second<<min(count-1, 10), maxAttachRetry) })
}

// refused records a candidate that answered with a refusal: it waits
// refusedHold, however often it refused.
func (p *attachPlan) refused(now time.Time, id proto.PeerID) {
	p.hold(now, id, true, func(int) time.Duration { return refusedHold })
}

// lost records an attachment that ended: the supernode waits lostHold (or
// longer after repeated failures) before it is tried again.
func (p *attachPlan) lost(now time.Time, id proto.PeerID) {
	p.hold(now, id, false, func(count int) time.Duration {
		return max(lostHold, min(time.Second<<min(count-1, 10), maxAttachRetry))
	})
}

func (p *attachPlan) hold(now time.Time, id proto.PeerID, refused bool, wait func(count int) time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fails[id]
	if f == nil {
		if len(p.fails) >= 4*proto.MaxPeers {
			p.pruneLocked(now)
		}
		f = &attachFail{}
		p.fails[id] = f
	}
	f.count++
	f.retryAt = now.Add(wait(f.count))
	f.refused = refused
}

// attached records a success; the supernode's failures are forgotten.
func (p *attachPlan) attached(id proto.PeerID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.fails, id)
}

// pruneLocked forgets failures whose wait is over, bounding the map.
func (p *attachPlan) pruneLocked(now time.Time) {
	for id, f := range p.fails {
		if !now.Before(f.retryAt) {
			delete(p.fails, id)
		}
	}
}

// wantSupernodes is how many attachments the leaf keeps.
func (n *Node) wantSupernodes() int { return n.cfg.Supernodes }

// attachments returns the live attachments, healthiest first.
func (n *Node) attachments() []*attachment {
	n.mu.Lock()
	atts := slices.Clone(n.atts)
	n.mu.Unlock()
	now := time.Now()
	scores := make(map[*attachment]time.Duration, len(atts))
	for _, a := range atts {
		scores[a] = a.score(now)
	}
	slices.SortStableFunc(atts, func(a, b *attachment) int {
		if c := cmp.Compare(scores[a], scores[b]); c != 0 {
			return c
		}
		return a.at.Compare(b.at) // the older attachment first
	})
	return atts
}

func (n *Node) attachedTo(id proto.PeerID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.atts {
		if a.sn.ID == id {
			return true
		}
	}
	return false
}

func (n *Node) removeAttachment(a *attachment) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i := slices.Index(n.atts, a); i >= 0 {
		n.atts = slices.Delete(n.atts, i, i+1)
	}
}

// leafLoop keeps the node attached to Config.Supernodes responsive
// supernodes until ctx ends or the node becomes a supernode. Each attachment
// runs in its own goroutine; when one ends the loop refills at once. It is
// make-before-break: an attachment whose supernode stops answering pings
// no longer counts, so a replacement is attached while the silent one waits
// for its connection to time out; when more than enough answer, the least
// healthy leave. On shutdown every attachment says goodbye before the loop
// returns.
func (n *Node) leafLoop(ctx context.Context) {
	m := &attachManager{n: n, plan: newAttachPlan(rand.Uint64()), changed: make(chan struct{}, 1)}
	defer m.wg.Wait()
	check := time.NewTicker(attachCheckEvery)
	defer check.Stop()
	want := n.wantSupernodes()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && n.Role() == proto.RoleLeaf {
		atts := n.attachments() // healthiest first
		now := time.Now()
		var live []*attachment
		for _, a := range atts {
			if !a.unresponsive(now) {
				live = append(live, a)
			}
		}
		if len(live) >= want && len(live) > 0 { // replaced: a supernode that asked us to move is left now
			for _, a := range atts {
				if why := a.movingWhy(); why != "" {
					a.leave(fmt.Sprintf("moved to supernode %s (%s)", live[0].sn.ID.Short(), why))
				}
			}
		}
		if len(live) > want {
			for _, a := range atts {
				if !slices.Contains(live[:want], a) {
					a.leave(fmt.Sprintf("%d supernodes answer and --supernodes is %d: keeping the healthiest", len(live), want))
				}
			}
		}
		need := min(want-len(live), 2*want-len(atts))
		if need <= 0 {
			select {
			case <-ctx.Done():
			case <-m.changed:
			case <-check.C:
			}
			continue
		}
		if added := m.fill(ctx, need); added > 0 {
			backoff = 100 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
		case <-m.changed:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, fillBackoffMax)
	}
}

// attachManager is the leaf loop's state: the plan, the attachment
// goroutines, and a wake-up for when one ends.
type attachManager struct {
	n        *Node
	plan     *attachPlan
	changed  chan struct{}
	wg       sync.WaitGroup
	lastWarn time.Time
}

func (m *attachManager) wake() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *attachManager) warn(msg string, fields ...zap.Field) {
	if time.Since(m.lastWarn) > 10*time.Second {
		m.lastWarn = time.Now()
		m.n.log.Warn(msg, fields...)
	}
}

// fill tries to add need attachments: from the host cache, then from a
// bootstrap server. It reports how many it added. (Becoming a supernode is
// the promotion loop's business, not the join's.)
func (m *attachManager) fill(ctx context.Context, need int) (added int) {
	n := m.n
	now := time.Now()
	var cands []proto.PeerInfo
	var seen []time.Time
	for _, e := range n.hosts.Entries() {
		cands, seen = append(cands, e.Info()), append(seen, e.LastSeen)
	}
	// A long-offline node's cache may be all dead: try a few entries per
	// round before asking a bootstrap (the ones that failed wait anyway).
	added = m.tryAll(ctx, m.plan.order(now, cands, seen), need, 2*need+2)
	if added >= need || ctx.Err() != nil {
		return added
	}

	// Ask a bootstrap server, saying whether the node's role is pinned.
	have := len(n.attachments())
	want := proto.RoleUnknown
	if n.cfg.Role == RoleLeaf || have > 0 {
		want = proto.RoleLeaf
	}
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	reply, _, err := n.bootstrapClient().Join(jctx, n.cfg.Bootstraps, want)
	cancel()
	if err != nil {
		if have == 0 {
			m.warn("cannot join the network yet: no supernode in the host cache answered and no bootstrap server did",
				zap.Int("host_cache", n.hosts.Len()), zap.Error(err))
		}
		return added
	}
	n.mu.Lock()
	n.observed = reply.ObservedAddr
	n.mu.Unlock()
	n.hosts.Add(time.Now(), reply.Supernodes...)
	added += m.tryAll(ctx, reply.Supernodes, need-added, proto.MaxPeers)
	if added < need && have+added == 0 {
		m.warn("no supernode took this node yet; retrying", zap.Int("offered", len(reply.Supernodes)))
	}
	return added
}

// tryAll attaches to up to need of cands, need at a time in parallel,
// following redirects, trying at most budget candidates, and reports how
// many attachments it added.
func (m *attachManager) tryAll(ctx context.Context, cands []proto.PeerInfo, need, budget int) int {
	n := m.n
	added := 0
	skip := func(id proto.PeerID) bool { return id == n.PeerID() || n.attachedTo(id) }
	tried := map[proto.PeerID]bool{}
	for added < need && len(tried) < budget && ctx.Err() == nil {
		now := time.Now()
		batch := m.plan.pick(now, cands, func(id proto.PeerID) bool { return tried[id] || skip(id) },
			min(need-added, budget-len(tried)), n.liveOthers(nil, now) == 0)
		if len(batch) == 0 {
			return added
		}
		type result struct {
			cand     proto.PeerInfo
			att      *attachment
			redirect []proto.PeerInfo
			err      error
		}
		results := make(chan result, len(batch))
		for _, c := range batch {
			tried[c.ID] = true
			go func() {
				att, redirect, err := n.attach(ctx, c)
				results <- result{c, att, redirect, err}
			}()
		}
		for range batch {
			r := <-results
			if r.err != nil {
				n.log.Debug("attach failed", zap.Stringer("supernode", r.cand.ID), zap.Error(r.err))
				if errors.Is(r.err, errRefused) {
					m.plan.refused(time.Now(), r.cand.ID)
				} else {
					m.plan.failed(time.Now(), r.cand.ID)
				}
				n.hosts.Add(time.Now(), r.redirect...)
				cands = append(cands, r.redirect...)
				continue
			}
			m.plan.attached(r.cand.ID)
			added++
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				n.runAttachment(ctx, r.att)
				m.plan.lost(time.Now(), r.att.sn.ID)
				m.wake()
			}()
		}
	}
	return added
}
