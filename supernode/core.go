// Package supernode is the supernode role: it accepts leaves up to a
// capacity, keeps a keyword index of their files, answers queries from it and
// forwards them across a mesh of neighbour supernodes with Gnutella's rules
// (TTL and hop count, a unique query ID, duplicate suppression with bounded
// memory and expiry, hits routed back along the reverse path).
//
// Core is the deterministic part: plain method calls with the time passed
// in, returning what to send. Runtime (runtime.go) owns the goroutines,
// streams and timers, and the simulator can drive Core directly.
package supernode

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/strata-p2p/strata/internal/index"
	"github.com/strata-p2p/strata/proto"
)

// Config tunes a supernode. The zero value of a field means its default.
type Config struct {
	// MaxLeaves is how many leaves the supernode accepts; beyond it a leaf is
	// refused with a redirect to other supernodes.
	MaxLeaves int
	// MeshDegree is how many neighbour supernodes the supernode dials and
	// keeps; it accepts up to twice as many inbound.
	MeshDegree int
	// DefaultTTL is the TTL of a query a leaf starts (clamped to proto.MaxTTL).
	DefaultTTL uint8
	// RouteExpiry is how long a query ID is remembered for duplicate
	// suppression and for routing its hits back.
	RouteExpiry time.Duration
	// MaxRoutes bounds the remembered query IDs; the oldest go first.
	MaxRoutes int
	// MaxResults caps the hits one query can collect at its supernode.
	MaxResults int
	// LeafQueryRate and LeafQueryBurst rate-limit each leaf's searches
	// (a token bucket: queries per second, and the burst).
	LeafQueryRate  float64
	LeafQueryBurst int
	// MaxCandidates bounds the supernodes remembered for mesh building.
	MaxCandidates int
	// GossipEvery is how often neighbours are sent a PeerList.
	GossipEvery time.Duration
	// Seed makes neighbour choice repeatable (simulator, tests).
	Seed int64
	// Reach limits push, hole punching and relaying for its leaves.
	Reach ReachConfig
}

// DefaultConfig returns the defaults; they are stated only here.
func DefaultConfig() Config {
	return Config{
		MaxLeaves:      100,
		MeshDegree:     4,
		DefaultTTL:     3,
		RouteExpiry:    30 * time.Second,
		MaxRoutes:      100_000,
		MaxResults:     500,
		LeafQueryRate:  5,
		LeafQueryBurst: 20,
		MaxCandidates:  1000,
		GossipEvery:    10 * time.Second,
		Reach:          DefaultReachConfig(),
	}
}

func (c Config) populate() Config {
	d := DefaultConfig()
	if c.MaxLeaves <= 0 {
		c.MaxLeaves = d.MaxLeaves
	}
	if c.MeshDegree <= 0 {
		c.MeshDegree = d.MeshDegree
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = d.DefaultTTL
	}
	c.DefaultTTL = min(c.DefaultTTL, proto.MaxTTL)
	if c.RouteExpiry <= 0 {
		c.RouteExpiry = d.RouteExpiry
	}
	if c.MaxRoutes <= 0 {
		c.MaxRoutes = d.MaxRoutes
	}
	if c.MaxResults <= 0 {
		c.MaxResults = d.MaxResults
	}
	if c.LeafQueryRate <= 0 {
		c.LeafQueryRate = d.LeafQueryRate
	}
	if c.LeafQueryBurst <= 0 {
		c.LeafQueryBurst = d.LeafQueryBurst
	}
	if c.MaxCandidates <= 0 {
		c.MaxCandidates = d.MaxCandidates
	}
	if c.GossipEvery <= 0 {
		c.GossipEvery = d.GossipEvery
	}
	c.Reach = c.Reach.populate()
	return c
}

// Out is one message the runtime must send: to a neighbour (To), or to the
// local search that started query Search (Local).
type Out struct {
	To     proto.PeerID
	Local  bool
	Search proto.QueryID
	Msg    proto.Message
}

// Drop reasons, counted in Stats.Drops.
const (
	DropDuplicate    = "duplicate_query"
	DropTTLClamped   = "ttl_clamped"
	DropUnknownQuery = "hit_for_unknown_query"
	DropRateLimited  = "leaf_rate_limited"
	DropBadQuery     = "bad_query"
	DropBadEntry     = "bad_share_entry"
	DropDupEntry     = "duplicate_share_entry"
	DropOverCap      = "share_over_cap"
	DropResultsFull  = "hits_over_max_results"
	DropRouteEvicted = "route_evicted"
	DropNotNeighbour = "message_from_non_neighbour"
)

// Stats are the core's counters.
type Stats struct {
	QueriesFromLeaves uint64            `json:"queries_from_leaves"`
	QueriesFromMesh   uint64            `json:"queries_from_mesh"`
	QueriesForwarded  uint64            `json:"queries_forwarded"`
	QueriesAnswered   uint64            `json:"queries_answered"`
	HitsSent          uint64            `json:"hits_sent"`
	Drops             map[string]uint64 `json:"drops"`
}

type leaf struct {
	handle uint32
	info   proto.PeerInfo
	tokens float64
	last   time.Time
	at     time.Time // when it attached
	others int       // other supernodes answering it, as it last said
}

type route struct {
	id       proto.QueryID
	from     proto.PeerID // neighbour it came from; zero when local
	local    bool
	asker    proto.PeerID // local: who asked (excluded from hits)
	expires  time.Time
	left     int // hits that may still travel back
	finished bool
}

type candidate struct {
	info     proto.PeerInfo
	seen     time.Time
	failures int
	retryAt  time.Time
}

// Core is the supernode's deterministic state. It is not safe for
// concurrent use: the runtime serialises calls.
type Core struct {
	cfg        Config
	self       proto.PeerInfo
	idx        *index.Index
	leaves     map[proto.PeerID]*leaf
	byHandle   map[uint32]*leaf
	nextHandle uint32
	neighbours map[proto.PeerID]proto.PeerInfo
	dialing    map[proto.PeerID]time.Time
	candidates map[proto.PeerID]*candidate
	routes     map[proto.QueryID]*route
	routeOrder []proto.QueryID // insertion order, for expiry and the bound
	lastGossip time.Time
	rng        *rand.Rand
	stats      Stats
	tickets    tickets
}

// SelfHandle is the index owner of the supernode's own shared files.
const SelfHandle uint32 = 0

// NewCore makes a supernode core for self (its peer ID and addresses).
func NewCore(cfg Config, self proto.PeerInfo) *Core {
	cfg = cfg.populate()
	self.Role = proto.RoleSupernode
	return &Core{
		cfg: cfg, self: self, idx: index.New(),
		leaves: map[proto.PeerID]*leaf{}, byHandle: map[uint32]*leaf{}, nextHandle: 1,
		neighbours: map[proto.PeerID]proto.PeerInfo{}, dialing: map[proto.PeerID]time.Time{},
		candidates: map[proto.PeerID]*candidate{}, routes: map[proto.QueryID]*route{},
		rng: rand.New(rand.NewSource(cfg.Seed)), tickets: newTickets(),
		stats: Stats{Drops: map[string]uint64{}},
	}
}

func (c *Core) drop(reason string) { c.stats.Drops[reason]++ }

// Config returns the populated configuration.
func (c *Core) Config() Config { return c.cfg }

// Load is the supernode's occupancy, for heartbeats and peer lists.
func (c *Core) Load() proto.Load {
	return proto.Load{Leaves: uint32(len(c.leaves)), Capacity: uint32(c.cfg.MaxLeaves),
		IndexFiles: uint32(c.idx.Len()), Neighbours: uint16(len(c.neighbours))}
}

// Info is the supernode's PeerInfo with its current load.
func (c *Core) Info() proto.PeerInfo {
	i := c.self
	i.Load = c.Load()
	return i
}

// SetAddrs updates the supernode's advertised addresses and reachability.
func (c *Core) SetAddrs(addrs []string, r proto.Reachability) {
	c.self.Addrs, c.self.Reachable = addrs, r
}

// ErrFull is returned by AttachLeaf when no leaf slot is free.
var ErrFull = errors.New("supernode is full")

// AttachLeaf takes a leaf that says others other supernodes answer it.
// When full it returns ErrFull and up to 10 other supernodes to try, least
// loaded first, unless the leaf has no other supernode and an attached leaf
// has one: then that leaf's slot is reclaimed (a leaf's only supernode comes
// before another leaf's spare). The reclaimed leaf is detached here and
// returned, for the caller to tell it; it is the one with the most other
// supernodes, the most recently attached of those.
func (c *Core) AttachLeaf(now time.Time, info proto.PeerInfo, others int) (redirect []proto.PeerInfo, evicted proto.PeerID, err error) {
	if l, ok := c.leaves[info.ID]; ok { // reattach: replace the old session
		c.DetachLeaf(now, l.info.ID)
	}
	if len(c.leaves) >= c.cfg.MaxLeaves {
		var victim *leaf
		if others == 0 {
			for _, l := range c.leaves {
				if l.others > 0 && (victim == nil || l.others > victim.others ||
					(l.others == victim.others && l.at.After(victim.at))) {
					victim = l
				}
			}
		}
		if victim == nil {
			return c.redirects(10), proto.PeerID{}, ErrFull
		}
		evicted = victim.info.ID
		c.DetachLeaf(now, evicted)
	}
	info.Role = proto.RoleLeaf
	l := &leaf{handle: c.nextHandle, info: info, tokens: float64(c.cfg.LeafQueryBurst), last: now, at: now, others: others}
	c.nextHandle++
	if c.nextHandle == 0 {
		c.nextHandle = 1
	}
	c.leaves[info.ID] = l
	c.byHandle[l.handle] = l
	return nil, evicted, nil
}

// SetLeafOthers records how many other supernodes answer a leaf, as it
// said (proto.LeafState). It reports false when id is not attached.
func (c *Core) SetLeafOthers(id proto.PeerID, others int) bool {
	l, ok := c.leaves[id]
	if ok {
		l.others = others
	}
	return ok
}

// redirects returns known supernodes with room, most free slots first.
func (c *Core) redirects(n int) []proto.PeerInfo {
	var out []proto.PeerInfo
	for id, info := range c.neighbours {
		if info.Load.Free() > 0 && id != c.self.ID {
			out = append(out, info)
		}
	}
	for id, cand := range c.candidates {
		if _, dup := c.neighbours[id]; !dup && cand.info.Load.Free() > 0 && id != c.self.ID {
			out = append(out, cand.info)
		}
	}
	slices.SortFunc(out, func(a, b proto.PeerInfo) int { return b.Load.Free() - a.Load.Free() })
	return out[:min(n, len(out))]
}

// SetLeafReach records what a leaf's latest dial-back found; its hits
// carry it. It reports false when id is not attached.
func (c *Core) SetLeafReach(id proto.PeerID, r proto.Reachability) bool {
	l, ok := c.leaves[id]
	if ok {
		l.info.Reachable = r
	}
	return ok
}

// IsLeaf reports whether id is attached.
func (c *Core) IsLeaf(id proto.PeerID) bool { _, ok := c.leaves[id]; return ok }

// DetachLeaf removes a leaf and its files. It reports how many files went.
func (c *Core) DetachLeaf(now time.Time, id proto.PeerID) int {
	l, ok := c.leaves[id]
	if !ok {
		return 0
	}
	delete(c.leaves, id)
	delete(c.byHandle, l.handle)
	return c.idx.RemoveOwner(l.handle)
}

// Leaves lists attached leaves with their file counts.
func (c *Core) Leaves() []LeafStatus {
	out := make([]LeafStatus, 0, len(c.leaves))
	for _, l := range c.leaves {
		out = append(out, LeafStatus{Peer: l.info, Files: c.idx.OwnerLen(l.handle)})
	}
	slices.SortFunc(out, func(a, b LeafStatus) int { return compareIDs(a.Peer.ID, b.Peer.ID) })
	return out
}

// LeafStatus is one leaf, for status output.
type LeafStatus struct {
	Peer  proto.PeerInfo `json:"peer"`
	Files int            `json:"files"`
}

func compareIDs(a, b proto.PeerID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// ShareResult says what happened to a batch of share changes.
type ShareResult struct {
	Added, Removed, Invalid, Duplicate, OverCap int
	FirstError                                  string
}

// Problem describes a partly refused batch, or "" when all was taken.
func (r ShareResult) Problem() string {
	if r.Invalid+r.Duplicate+r.OverCap == 0 {
		return ""
	}
	s := fmt.Sprintf("supernode refused %d entries (%d invalid, %d duplicate, %d over the cap of %d files per leaf)",
		r.Invalid+r.Duplicate+r.OverCap, r.Invalid, r.Duplicate, r.OverCap, proto.MaxSharesPerLeaf)
	if r.FirstError != "" {
		s += "; first: " + r.FirstError
	}
	return s
}

// AddShares indexes a leaf's (or, with the supernode's own ID, its own) files.
func (c *Core) AddShares(id proto.PeerID, entries []proto.FileEntry) (ShareResult, error) {
	owner, err := c.owner(id)
	if err != nil {
		return ShareResult{}, err
	}
	var r ShareResult
	for i := range entries {
		e := &entries[i]
		if err := proto.ValidateEntry(e); err != nil {
			r.Invalid++
			c.drop(DropBadEntry)
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
			continue
		}
		if c.idx.OwnerLen(owner) >= proto.MaxSharesPerLeaf && owner != SelfHandle {
			r.OverCap++
			c.drop(DropOverCap)
			continue
		}
		if _, ok := c.idx.Add(owner, e); !ok {
			r.Duplicate++
			c.drop(DropDupEntry)
			continue
		}
		r.Added++
	}
	return r, nil
}

// RemoveShares drops files from a leaf's entry.
func (c *Core) RemoveShares(id proto.PeerID, refs []proto.FileRef) (int, error) {
	owner, err := c.owner(id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range refs {
		if c.idx.Remove(owner, r.ContentID, r.Name) {
			n++
		}
	}
	return n, nil
}

func (c *Core) owner(id proto.PeerID) (uint32, error) {
	if id == c.self.ID {
		return SelfHandle, nil
	}
	l, ok := c.leaves[id]
	if !ok {
		return 0, proto.Errorf(proto.CodeRefused, "peer %s is not attached as a leaf", id.Short())
	}
	return l.handle, nil
}

// IndexFiles is the number of files in the index.
func (c *Core) IndexFiles() int { return c.idx.Len() }

// IndexBytes estimates the index's memory.
func (c *Core) IndexBytes() int { return c.idx.Bytes() }

func (c *Core) holder(owner uint32) (proto.PeerInfo, bool) {
	if owner == SelfHandle {
		return c.Info(), true
	}
	l, ok := c.byHandle[owner]
	if !ok {
		return proto.PeerInfo{}, false
	}
	return l.info, true
}

// Search is a parsed query: keywords and filters (index.Query), or
// "cid:<64 hex digits>" for the holders of one file (what a download asks).
type Search struct {
	q   *index.Query
	cid proto.ContentID
}

// ParseSearch parses query text as supernodes do.
func ParseSearch(text string) (Search, error) {
	if rest, ok := strings.CutPrefix(strings.TrimSpace(text), "cid:"); ok {
		cid, err := proto.ParseContentID(rest)
		if err != nil {
			return Search{}, err
		}
		return Search{cid: cid}, nil
	}
	q, err := index.ParseQuery(text)
	return Search{q: q}, err
}

// String is the canonical text, which ParseSearch parses back.
func (s Search) String() string {
	if s.q == nil {
		return "cid:" + s.cid.String()
	}
	return s.q.String()
}

// answer searches the index for q, skipping files held by skip. A hit for
// a leaf not known to be reachable carries this supernode and a ticket
// (proto.Via), so the asker can have it pushed, punched or relayed from
// anywhere.
func (c *Core) answer(now time.Time, q Search, limit int, hops uint8, skip proto.PeerID) []proto.Hit {
	var hits []proto.Hit
	var vias map[proto.PeerID]*proto.Via // a holder's files share one; made when first needed
	visit := c.idx.Search
	if q.q == nil {
		visit = func(_ *index.Query, limit int, fn func(uint32, proto.FileEntry) bool) {
			c.idx.ByContentID(q.cid, limit, fn)
		}
	}
	visit(q.q, limit, func(owner uint32, e proto.FileEntry) bool {
		h, ok := c.holder(owner)
		if !ok || h.ID == skip {
			return true
		}
		h.Load = proto.Load{}
		hit := proto.Hit{Entry: e, Holder: h, Hops: hops}
		if owner != SelfHandle && h.Reachable != proto.ReachPublic { // unreachable, or not known to be reachable
			if vias == nil {
				vias = map[proto.PeerID]*proto.Via{}
			}
			if vias[h.ID] == nil {
				ticket, exp := c.tickets.issue(now, h.ID)
				self := c.self
				self.Load = proto.Load{}
				vias[h.ID] = &proto.Via{Supernode: self, Ticket: ticket, Expires: exp}
			}
			hit.Via = vias[h.ID]
		}
		hits = append(hits, hit)
		return len(hits) < limit
	})
	return hits
}

// StartSearch begins a search for asker: a leaf of this supernode, or the
// supernode itself. It returns the hits from the local index, and the
// queries to forward. The runtime must deliver later Outs with Local set to
// the search, until EndSearch.
func (c *Core) StartSearch(now time.Time, asker proto.PeerID, q proto.Query) ([]proto.Hit, []Out, error) {
	if asker != c.self.ID {
		l, ok := c.leaves[asker]
		if !ok {
			return nil, nil, proto.Errorf(proto.CodeRefused, "searches are served only for attached leaves")
		}
		l.tokens = min(float64(c.cfg.LeafQueryBurst), l.tokens+now.Sub(l.last).Seconds()*c.cfg.LeafQueryRate)
		l.last = now
		if l.tokens < 1 {
			c.drop(DropRateLimited)
			return nil, nil, proto.Errorf(proto.CodeRateLimited, "more than %.0f searches a second; slow down", c.cfg.LeafQueryRate)
		}
		l.tokens--
	}
	c.stats.QueriesFromLeaves++
	parsed, err := ParseSearch(q.Text)
	if err != nil {
		c.drop(DropBadQuery)
		return nil, nil, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	if _, seen := c.routes[q.ID]; seen {
		c.drop(DropDuplicate)
		return nil, nil, proto.Errorf(proto.CodeBadRequest, "query ID already in use")
	}
	max := int(q.MaxResults)
	if max <= 0 || max > c.cfg.MaxResults {
		max = c.cfg.MaxResults
	}
	ttl := q.TTL
	if ttl == 0 {
		ttl = c.cfg.DefaultTTL
	}
	if ttl > proto.MaxTTL {
		ttl = proto.MaxTTL
		c.drop(DropTTLClamped)
	}
	hits := c.answer(now, parsed, max, 0, asker)
	r := c.remember(now, &route{id: q.ID, local: true, asker: asker, left: max - len(hits)})
	if len(hits) > 0 {
		c.stats.QueriesAnswered++
		c.stats.HitsSent += uint64(len(hits))
	}
	var outs []Out
	if r.left > 0 {
		fwd := proto.Query{ID: q.ID, TTL: ttl, Hops: 0, Text: parsed.String(), MaxResults: uint16(r.left)}
		outs = c.forward(fwd, proto.PeerID{})
	}
	return hits, outs, nil
}

// EndSearch marks a local search finished: later hits for it are dropped.
func (c *Core) EndSearch(id proto.QueryID) {
	if r, ok := c.routes[id]; ok && r.local {
		r.finished = true
	}
}

// forward sends q to every neighbour but from, with TTL-1 and Hops+1. The
// TTL counts the supernode hops a query may still travel: a query that
// arrives with TTL 0 is answered but goes no further.
func (c *Core) forward(q proto.Query, from proto.PeerID) []Out {
	if q.TTL == 0 {
		return nil
	}
	q.TTL--
	q.Hops++
	var outs []Out
	for _, id := range c.neighbourIDs() {
		if id == from {
			continue
		}
		m := q
		outs = append(outs, Out{To: id, Msg: &m})
		c.stats.QueriesForwarded++
	}
	return outs
}

func (c *Core) neighbourIDs() []proto.PeerID {
	ids := make([]proto.PeerID, 0, len(c.neighbours))
	for id := range c.neighbours {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

func (c *Core) remember(now time.Time, r *route) *route {
	r.expires = now.Add(c.cfg.RouteExpiry)
	c.routes[r.id] = r
	c.routeOrder = append(c.routeOrder, r.id)
	for len(c.routes) > c.cfg.MaxRoutes {
		c.evictOldest()
	}
	return r
}

func (c *Core) evictOldest() {
	id := c.routeOrder[0]
	c.routeOrder = c.routeOrder[1:]
	if _, ok := c.routes[id]; ok {
		delete(c.routes, id)
		c.drop(DropRouteEvicted)
	}
}

// MeshQuery handles a query from neighbour from: duplicates are dropped;
// otherwise the local index answers (hits go back to from) and the query
// goes on to the other neighbours while its TTL lasts.
func (c *Core) MeshQuery(now time.Time, from proto.PeerID, q *proto.Query) []Out {
	if _, ok := c.neighbours[from]; !ok {
		c.drop(DropNotNeighbour)
		return nil
	}
	c.stats.QueriesFromMesh++
	if _, seen := c.routes[q.ID]; seen {
		c.drop(DropDuplicate)
		return nil
	}
	if q.TTL > proto.MaxTTL {
		q.TTL = proto.MaxTTL
		c.drop(DropTTLClamped)
	}
	parsed, err := ParseSearch(q.Text)
	if err != nil {
		c.drop(DropBadQuery)
		return nil
	}
	max := int(q.MaxResults)
	if max <= 0 || max > c.cfg.MaxResults {
		max = c.cfg.MaxResults
	}
	r := c.remember(now, &route{id: q.ID, from: from, left: max})
	var outs []Out
	if hits := c.answer(now, parsed, max, q.Hops, proto.PeerID{}); len(hits) > 0 {
		c.stats.QueriesAnswered++
		outs = append(outs, c.hitsTo(r, hits)...)
	}
	return append(outs, c.forward(*q, from)...)
}

// hitsTo routes hits back toward the origin of r, in frames of at most
// proto.MaxHitsPerFrame, within the route's remaining budget.
func (c *Core) hitsTo(r *route, hits []proto.Hit) []Out {
	if r.finished {
		c.drop(DropUnknownQuery)
		return nil
	}
	if len(hits) > r.left {
		c.stats.Drops[DropResultsFull] += uint64(len(hits) - r.left)
		hits = hits[:r.left]
	}
	r.left -= len(hits)
	c.stats.HitsSent += uint64(len(hits))
	var outs []Out
	for len(hits) > 0 {
		n := min(len(hits), proto.MaxHitsPerFrame)
		m := &proto.QueryHits{ID: r.id, Hits: slices.Clone(hits[:n])}
		hits = hits[n:]
		if r.local {
			outs = append(outs, Out{Local: true, Search: r.id, Msg: m})
		} else {
			outs = append(outs, Out{To: r.from, Msg: m})
		}
	}
	return outs
}

// MeshHits handles hits from a neighbour: they go back the way the query
// came. Hits for a query this supernode never saw are dropped and counted.
func (c *Core) MeshHits(now time.Time, from proto.PeerID, m *proto.QueryHits) []Out {
	if _, ok := c.neighbours[from]; !ok {
		c.drop(DropNotNeighbour)
		return nil
	}
	r, ok := c.routes[m.ID]
	if !ok || now.After(r.expires) {
		c.drop(DropUnknownQuery)
		return nil
	}
	return c.hitsTo(r, m.Hits)
}

// Tick expires remembered queries and, when the mesh is short of
// MeshDegree, returns supernodes to dial. It also says whether it is time
// to gossip a PeerList to the neighbours.
func (c *Core) Tick(now time.Time) (dial []proto.PeerInfo, gossip []Out) {
	for len(c.routeOrder) > 0 {
		id := c.routeOrder[0]
		r, ok := c.routes[id]
		if ok && now.Before(r.expires) {
			break
		}
		c.routeOrder = c.routeOrder[1:]
		if ok {
			delete(c.routes, id)
		}
	}
	for id, t := range c.dialing {
		if now.Sub(t) > 30*time.Second {
			delete(c.dialing, id)
		}
	}
	want := c.cfg.MeshDegree - len(c.neighbours) - len(c.dialing)
	if want > 0 {
		var pool []*candidate
		for id, cand := range c.candidates {
			if _, n := c.neighbours[id]; n {
				continue
			}
			if _, d := c.dialing[id]; d || now.Before(cand.retryAt) || id == c.self.ID {
				continue
			}
			pool = append(pool, cand)
		}
		slices.SortFunc(pool, func(a, b *candidate) int { return compareIDs(a.info.ID, b.info.ID) })
		c.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		for _, cand := range pool[:min(want, len(pool))] {
			c.dialing[cand.info.ID] = now
			dial = append(dial, cand.info)
		}
	}
	if now.Sub(c.lastGossip) >= c.cfg.GossipEvery && len(c.neighbours) > 0 {
		c.lastGossip = now
		list := c.PeerList()
		for _, id := range c.neighbourIDs() {
			gossip = append(gossip, Out{To: id, Msg: list})
		}
	}
	return dial, gossip
}

// PeerList is what this supernode tells others about the mesh: itself,
// its neighbours, then other known supernodes, up to proto.MaxPeers.
func (c *Core) PeerList() *proto.PeerList {
	l := &proto.PeerList{Peers: proto.List[proto.PeerInfo]{c.Info()}}
	for _, id := range c.neighbourIDs() {
		l.Peers = append(l.Peers, c.neighbours[id])
	}
	for _, cand := range c.candidates {
		if len(l.Peers) >= proto.MaxPeers {
			break
		}
		if _, n := c.neighbours[cand.info.ID]; !n {
			l.Peers = append(l.Peers, cand.info)
		}
	}
	return l
}

// Learn records supernodes heard of (from the bootstrap or a PeerList).
func (c *Core) Learn(now time.Time, peers []proto.PeerInfo) {
	for _, p := range peers {
		if p.ID == c.self.ID || p.ID.IsZero() || len(p.Addrs) == 0 {
			continue
		}
		if n, ok := c.neighbours[p.ID]; ok {
			n.Load = p.Load
			c.neighbours[p.ID] = n
		}
		if cand, ok := c.candidates[p.ID]; ok {
			cand.info, cand.seen = p, now
			continue
		}
		if len(c.candidates) >= c.cfg.MaxCandidates {
			c.forgetStalest()
		}
		c.candidates[p.ID] = &candidate{info: p, seen: now}
	}
}

func (c *Core) forgetStalest() {
	var oldest proto.PeerID
	var t time.Time
	first := true
	for id, cand := range c.candidates {
		if first || cand.seen.Before(t) {
			oldest, t, first = id, cand.seen, false
		}
	}
	delete(c.candidates, oldest)
}

// AcceptNeighbour decides an inbound mesh link from info. When this side is
// also dialing info, the link dialed by the lower peer ID wins, so two
// supernodes that dial each other end with one link.
func (c *Core) AcceptNeighbour(now time.Time, info proto.PeerInfo) error {
	if _, ok := c.neighbours[info.ID]; ok {
		return proto.Errorf(proto.CodeRefused, "already linked")
	}
	if _, ok := c.dialing[info.ID]; ok && compareIDs(c.self.ID, info.ID) < 0 {
		return proto.Errorf(proto.CodeRefused, "simultaneous dial: keeping the link %s dialed", c.self.ID.Short())
	}
	if len(c.neighbours) >= 2*c.cfg.MeshDegree {
		return proto.Errorf(proto.CodeFull, "mesh full (%d neighbours)", len(c.neighbours))
	}
	c.addNeighbour(now, info)
	return nil
}

// DialDone reports the outcome of a dial Tick asked for. On success the
// link is kept unless an inbound link from the same peer won meanwhile.
func (c *Core) DialDone(now time.Time, info proto.PeerInfo, err error) bool {
	delete(c.dialing, info.ID)
	if err != nil {
		if cand, ok := c.candidates[info.ID]; ok {
			cand.failures++
			cand.retryAt = now.Add(min(time.Duration(1<<min(cand.failures, 6))*time.Second, time.Minute))
			if cand.failures > 8 {
				delete(c.candidates, info.ID)
			}
		}
		return false
	}
	if _, ok := c.neighbours[info.ID]; ok {
		return false
	}
	c.addNeighbour(now, info)
	return true
}

func (c *Core) addNeighbour(now time.Time, info proto.PeerInfo) {
	info.Role = proto.RoleSupernode
	c.neighbours[info.ID] = info
	if cand, ok := c.candidates[info.ID]; ok {
		cand.failures, cand.retryAt, cand.info = 0, time.Time{}, info
	} else {
		c.Learn(now, []proto.PeerInfo{info})
	}
}

// NeighbourDown removes a neighbour whose link ended. It stays a
// candidate, retried after a back-off.
func (c *Core) NeighbourDown(now time.Time, id proto.PeerID) {
	delete(c.neighbours, id)
	if cand, ok := c.candidates[id]; ok {
		cand.failures++
		cand.retryAt = now.Add(time.Second)
	}
}

// Neighbours lists the current neighbours.
func (c *Core) Neighbours() []proto.PeerInfo {
	out := make([]proto.PeerInfo, 0, len(c.neighbours))
	for _, id := range c.neighbourIDs() {
		out = append(out, c.neighbours[id])
	}
	return out
}

// IsNeighbour reports whether id is a current neighbour.
func (c *Core) IsNeighbour(id proto.PeerID) bool { _, ok := c.neighbours[id]; return ok }

// Stats returns a copy of the counters.
func (c *Core) Stats() Stats {
	s := c.stats
	s.Drops = make(map[string]uint64, len(c.stats.Drops))
	for k, v := range c.stats.Drops {
		s.Drops[k] = v
	}
	return s
}

// Routes is the number of remembered query IDs.
func (c *Core) Routes() int { return len(c.routes) }
