package bootstrap

import (
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// maxAddrLen is the longest listen address kept; longer ones are dropped.
const maxAddrLen = 255

// maxPendingAttaches caps the pending attaches remembered per supernode, so
// a flood of joins cannot grow an entry without bound. Past the cap the
// oldest is forgotten early.
const maxPendingAttaches = 128

// Registry is the bootstrap server's state: the live supernodes with their
// self-reported load and the attaches recently handed out. (Which nodes
// become supernodes is the promotion planner's business: see promotion.go.) It is a plain data structure: no goroutines, no sockets, and
// time is passed in, so the server, the tests and the simulator drive the
// same code. It is not safe for concurrent use; its owner serialises calls.
//
// Its state is soft: after a restart it is rebuilt from the supernodes'
// next heartbeats.
type Registry struct {
	cfg     Config
	rng     *rand.Rand
	entries []*entry // in a stable order, so that a seeded run repeats
	byID    map[proto.PeerID]*entry
}

// entry is one registered supernode.
type entry struct {
	id       proto.PeerID
	addrs    []string // never modified in place, only replaced
	load     proto.Load
	lastSeen time.Time
	pending  []time.Time // deadlines of attaches handed out, oldest first
}

// NewRegistry returns an empty registry. Unset fields of cfg take their
// defaults; a nil cfg.Rand is seeded at random.
func NewRegistry(cfg Config) (*Registry, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Registry{cfg: cfg, rng: cfg.Rand, byID: map[proto.PeerID]*entry{}}, nil
}

func (r *Registry) live(e *entry, now time.Time) bool {
	return now.Sub(e.lastSeen) < r.cfg.Expiry
}

// Register adds or refreshes the supernode id; it is both the first
// registration and every heartbeat.
//
// Addresses: at most proto.MaxAddrs are kept, and entries that are not
// host:port (or longer than 255 bytes) are dropped. A supernode bound to a
// wildcard address cannot know which of its addresses others reach it on,
// so an address whose host is unspecified (0.0.0.0, ::, or empty) is
// rewritten to the host the request came from (observed) with the
// advertised port. When no usable address remains, observed itself is used:
// Strata listens and dials from one UDP socket, so the source address of the
// request is the supernode's listen address as the bootstrap sees it.
//
// The reply lists up to Config.MeshPeers other live supernodes, a random
// sample, for the supernode to peer with. Registering a new supernode when
// the registry holds Config.MaxSupernodes live ones fails with a
// *proto.Error of code proto.CodeFull.
func (r *Registry) Register(now time.Time, id proto.PeerID, addrs []string, observed string, load proto.Load) (proto.RegisterReply, error) {
	e, ok := r.byID[id]
	if !ok {
		if len(r.entries) >= r.cfg.MaxSupernodes {
			r.Expire(now)
		}
		if len(r.entries) >= r.cfg.MaxSupernodes {
			return proto.RegisterReply{}, proto.Errorf(proto.CodeFull,
				"this bootstrap server already tracks %d supernodes, its limit; register with another bootstrap server", r.cfg.MaxSupernodes)
		}
		e = &entry{id: id}
		r.entries = append(r.entries, e)
		r.byID[id] = e
	}
	e.addrs = normalizeAddrs(addrs, observed)
	e.load = load
	e.lastSeen = now
	return proto.RegisterReply{
		Peers:           r.sample(now, id, r.cfg.MeshPeers),
		HeartbeatMillis: uint32(r.cfg.Heartbeat / time.Millisecond),
		ExpiryMillis:    uint32(r.cfg.Expiry / time.Millisecond),
		Addrs:           slices.Clone(e.addrs),
	}, nil
}

// normalizeAddrs applies Register's address rules.
func normalizeAddrs(addrs []string, observed string) []string {
	obsHost, _, obsErr := net.SplitHostPort(observed)
	out := make([]string, 0, min(len(addrs), proto.MaxAddrs))
	for _, a := range addrs {
		if len(out) == proto.MaxAddrs {
			break
		}
		if len(a) > maxAddrLen {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || port == "" {
			continue
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			if obsErr != nil {
				continue
			}
			a = net.JoinHostPort(obsHost, port)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 && observed != "" && len(observed) <= maxAddrLen {
		out = append(out, observed)
	}
	return out
}

// Join answers a node asking for supernodes to attach to. observed is the
// address the request came from, echoed in ObservedAddr.
//
// The reply lists up to Config.JoinReplySize live supernodes other than
// from. Those with room come first, in a random order weighted by their
// room, so that newcomers spread in proportion to free slots; the rest
// follow, least over-committed first. "Room" is a supernode's free slots as
// of its last heartbeat less the attaches handed out in the last
// Config.AttachHold: the supernode listed first in each reply is counted as
// one pending attach, so a burst of joins between two heartbeats spreads.
//
// Roles: a node joining with RoleSupernode gets Become = RoleSupernode and
// a mesh sample of supernodes to peer with. Any other node (a leaf, or an
// auto node, which the promotion planner may later ask to step up) gets the
// list.
func (r *Registry) Join(now time.Time, from proto.PeerID, role proto.Role, observed string) proto.JoinReply {
	reply := proto.JoinReply{ObservedAddr: observed}
	if role == proto.RoleSupernode {
		reply.Become = proto.RoleSupernode
		reply.Supernodes = r.sample(now, from, r.cfg.MeshPeers)
		return reply
	}
	list := r.rank(now, from, r.cfg.JoinReplySize)
	if len(list) > 0 {
		first := list[0]
		if len(first.pending) == maxPendingAttaches {
			first.pending = first.pending[1:]
		}
		first.pending = append(first.pending, now.Add(r.cfg.AttachHold))
	}
	reply.Supernodes = make(proto.List[proto.PeerInfo], len(list))
	for i, e := range list {
		reply.Supernodes[i] = e.info()
	}
	return reply
}

// candidate is a supernode being ranked for a JoinReply; lower sorts first.
type candidate struct {
	full bool    // no room left
	key  float64 // with room: exponential draw over room (weighted order); full: over-commitment
	tie  float64
	e    *entry
}

func (a candidate) less(b candidate) bool {
	if a.full != b.full {
		return !a.full
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.tie < b.tie
}

// rank returns the best k live supernodes other than from. Ordering supernodes with room by an exponential
// draw divided by their room is a weighted random order: each comes first
// with probability proportional to its room.
func (r *Registry) rank(now time.Time, from proto.PeerID, k int) []*entry {
	best := make([]candidate, 0, k+1)
	for _, e := range r.entries {
		if e.id == from || !r.live(e, now) {
			continue
		}
		e.prunePending(now)
		// Not Load.Free: over-full supernodes rank by how far over they are.
		free := int(e.load.Capacity) - int(e.load.Leaves) - len(e.pending)
		c := candidate{full: free <= 0, e: e}
		if c.full {
			if len(best) == k && !best[k-1].full {
				continue // k supernodes with room already found
			}
			c.key, c.tie = float64(-free), r.rng.Float64()
		} else {
			c.key = r.rng.ExpFloat64() / float64(free) // ties have probability zero
		}
		if len(best) == k && !c.less(best[k-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, c, func(a, b candidate) int {
			if a.less(b) {
				return -1
			}
			return 1
		})
		best = slices.Insert(best, i, c)
		if len(best) > k {
			best = best[:k]
		}
	}
	out := make([]*entry, len(best))
	for i, c := range best {
		out[i] = c.e
	}
	return out
}

func (e *entry) prunePending(now time.Time) {
	n := 0
	for n < len(e.pending) && !now.Before(e.pending[n]) {
		n++
	}
	if n == len(e.pending) {
		e.pending = nil
	} else if n > 0 {
		e.pending = slices.Clone(e.pending[n:])
	}
}

// sample returns up to k live supernodes other than exclude, chosen
// uniformly at random (a lazy Fisher-Yates shuffle, so it costs O(k) when
// most entries are live rather than O(registry size)).
func (r *Registry) sample(now time.Time, exclude proto.PeerID, k int) proto.List[proto.PeerInfo] {
	n := len(r.entries)
	swapped := map[int]int{}
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	out := make(proto.List[proto.PeerInfo], 0, min(k, n))
	for i := 0; i < n && len(out) < k; i++ {
		j := i + r.rng.IntN(n-i)
		vi, vj := at(i), at(j)
		swapped[i], swapped[j] = vj, vi
		e := r.entries[vj]
		if e.id != exclude && r.live(e, now) {
			out = append(out, e.info())
		}
	}
	return out
}

func (e *entry) info() proto.PeerInfo {
	return proto.PeerInfo{ID: e.id, Addrs: slices.Clone(e.addrs), Role: proto.RoleSupernode, Load: e.load}
}

// Expire drops the supernodes that have not registered for Config.Expiry.
// It returns the dropped supernodes.
func (r *Registry) Expire(now time.Time) []proto.PeerID {
	var dropped []proto.PeerID
	for i := 0; i < len(r.entries); {
		e := r.entries[i]
		if r.live(e, now) {
			e.prunePending(now)
			i++
			continue
		}
		dropped = append(dropped, e.id)
		delete(r.byID, e.id)
		last := len(r.entries) - 1
		r.entries[i] = r.entries[last]
		r.entries[last] = nil
		r.entries = r.entries[:last]
	}
	return dropped
}

// Remove forgets the supernode id at once (it said it is a leaf again) and
// reports whether it was registered.
func (r *Registry) Remove(id proto.PeerID) bool {
	e, ok := r.byID[id]
	if !ok {
		return false
	}
	delete(r.byID, id)
	i := slices.Index(r.entries, e)
	last := len(r.entries) - 1
	r.entries[i] = r.entries[last]
	r.entries[last] = nil
	r.entries = r.entries[:last]
	return true
}

// Len is the number of supernodes held, including any that have missed
// their heartbeats but not yet been expired.
func (r *Registry) Len() int { return len(r.entries) }

// Status is what the bootstrap server knows, as served at GET /v1/status.
type Status struct {
	PeerID     proto.PeerID      `json:"peer_id"`
	Role       proto.Role        `json:"role"`
	Supernodes []SupernodeStatus `json:"supernodes"`
	Totals     Totals            `json:"totals"`
	// Promotion is the promotion planner's view (the server fills it in).
	Promotion *PromotionStatus `json:"promotion,omitempty"`
}

// SupernodeStatus is one registered supernode.
type SupernodeStatus struct {
	PeerID proto.PeerID `json:"peer_id"`
	Addrs  []string     `json:"addrs"`
	Load   proto.Load   `json:"load"`
	// LastSeenMillis is the age of its last heartbeat.
	LastSeenMillis int64 `json:"last_seen_ms"`
	// PendingAttaches is how many joiners were recently handed this
	// supernode first and may not show in its load yet.
	PendingAttaches int `json:"pending_attaches"`
}

// Totals sums the live supernodes' self-reported load.
type Totals struct {
	Supernodes         int     `json:"supernodes"`
	Leaves             int     `json:"leaves"`
	Capacity           int     `json:"capacity"`
	FreeSlots          int     `json:"free_slots"`
	IndexFiles         int     `json:"index_files"`
	LeavesPerSupernode float64 `json:"leaves_per_supernode"`
}

// Snapshot returns the live supernodes, ordered by peer ID, and totals.
// PeerID and Role are left for the caller (the server) to fill in.
func (r *Registry) Snapshot(now time.Time) Status {
	st := Status{Supernodes: []SupernodeStatus{}}
	for _, e := range r.entries {
		if !r.live(e, now) {
			continue
		}
		pending := 0
		for _, d := range e.pending {
			if now.Before(d) {
				pending++
			}
		}
		st.Supernodes = append(st.Supernodes, SupernodeStatus{
			PeerID: e.id, Addrs: slices.Clone(e.addrs), Load: e.load,
			LastSeenMillis: now.Sub(e.lastSeen).Milliseconds(), PendingAttaches: pending,
		})
		st.Totals.Supernodes++
		st.Totals.Leaves += int(e.load.Leaves)
		st.Totals.Capacity += int(e.load.Capacity)
		st.Totals.FreeSlots += e.load.Free()
		st.Totals.IndexFiles += int(e.load.IndexFiles)
	}
	slices.SortFunc(st.Supernodes, func(a, b SupernodeStatus) int { return slices.Compare(a.PeerID[:], b.PeerID[:]) })
	if st.Totals.Supernodes > 0 {
		st.Totals.LeavesPerSupernode = float64(st.Totals.Leaves) / float64(st.Totals.Supernodes)
	}
	return st
}
