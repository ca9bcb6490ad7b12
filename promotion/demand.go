package promotion

import (
	"bytes"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// Measured is what a bootstrap server measured about a node itself: the
// only inputs of its ranking. It never holds what the node says of its own
// capacity.
type Measured struct {
	// Reachable is the result of the server's dial-back to the node's
	// advertised address. Only ReachPublic nodes are asked to step up.
	Reachable proto.Reachability `json:"reachable"`
	// UpBps and DownBps are the rates the server measured in a bandwidth
	// probe with the node (its upload is the server's download).
	UpBps   float64 `json:"up_bps"`
	DownBps float64 `json:"down_bps"`
	// Seen is how long the server has known the node without a break (its
	// uptime as the server saw it).
	Seen time.Duration `json:"seen_ns"`
}

// Supernode is a live supernode as the bootstrap server knows it.
type Supernode struct {
	ID       proto.PeerID `json:"peer_id"`
	Measured Measured     `json:"measured"`
	// Leaves is the supernode's own count of its leaves (its heartbeat's
	// Load). It is used only to tell idle supernodes, the first to step
	// down: a supernode that under-reports only hurts itself; one that
	// over-reports can at worst keep its own role.
	Leaves int `json:"leaves"`
	// Pinned: the node runs with --role supernode and never steps down
	// when asked, so it is not asked.
	Pinned bool `json:"pinned,omitempty"`
}

// Candidate is a node that could step up: an auto-role leaf.
type Candidate struct {
	ID       proto.PeerID `json:"peer_id"`
	Measured Measured     `json:"measured"`
	// Declined is set when the node said it will not step up now (its
	// Decision.Decline). A refusal can only lower a node's chances, so the
	// server believes it; the node is left alone for Config.DeclineHold.
	Declined bool `json:"declined,omitempty"`
}

// Network is what a bootstrap server knows when it plans.
type Network struct {
	Supernodes []Supernode
	Candidates []Candidate
	// Leaves is how many leaves the network has: nodes that joined as
	// leaves or in auto role within the registry's expiry, attached or
	// still looking. The server should count them itself, not add up the
	// supernodes' reports: a supernode that inflated its count would make
	// others step up. Never taken as fewer than the candidates.
	Leaves int
}

// Ranked is a node with the score the planner ranked it by.
type Ranked struct {
	ID    proto.PeerID `json:"peer_id"`
	Score float64      `json:"score"`
	// Young: seen for less than Config.MinUptime (asked only when no
	// older candidate remained: its Demand waives the uptime gate).
	Young bool `json:"young,omitempty"`
	// Idle: a supernode without leaves for Config.IdleAfter.
	Idle bool `json:"idle,omitempty"`
}

// Plan is the planner's answer: how many supernodes the network wants, and
// whom to ask to change role.
type Plan struct {
	At         time.Time `json:"at"`
	Leaves     int       `json:"leaves"`
	Supernodes int       `json:"supernodes"` // live and not unreachable
	// Need is the supernodes wanted: the target ratio with headroom, for
	// the leaves left once the asked step-ups are done. Below it,
	// candidates are asked to step up.
	Need int `json:"need"`
	// Keep is the most supernodes kept: above it (the ratio with twice the
	// headroom), supernodes are asked to step down. Between Need and Keep
	// nothing changes, so a leaf count wandering around a boundary moves
	// nobody.
	Keep int `json:"keep"`
	// StepUp and StepDown are the nodes asked, best and worst first.
	StepUp   []Ranked `json:"step_up"`
	StepDown []Ranked `json:"step_down"`
	Reason   string   `json:"reason"`
}

// Demand returns what the plan asks of node id, to carry in its reply.
func (pl *Plan) Demand(id proto.PeerID) Demand {
	d := Demand{Supernodes: pl.Supernodes, Need: pl.Need, Leaves: pl.Leaves}
	for _, r := range pl.StepUp {
		if r.ID == id {
			d.Ask, d.AcceptYoung = AskStepUp, r.Young
			return d
		}
	}
	for _, r := range pl.StepDown {
		if r.ID == id {
			d.Ask = AskStepDown
			return d
		}
	}
	return d
}

// tracked is what the planner remembers of one node between plans.
type tracked struct {
	supernode bool
	since     time.Time // in its current role (as the planner saw it) since
	demoted   bool      // its last role change was a step down
	idleSince time.Time // a supernode without leaves since (zero: has leaves)
	askedUp   time.Time // start of the standing step-up ask (zero: none)
	askedDown time.Time // start of the standing step-down ask (zero: none)
	declined  time.Time // leave it alone until then
	seen      time.Time // last plan it was part of
}

// Planner is a bootstrap server's side of promotion: from the supernodes,
// candidates and leaf count it knows, it works out how many supernodes the
// network needs and asks the best candidates to step up or the idle and
// weakest supernodes to step down, never below Config.MinSupernodes.
//
// Like Policy it is a plain state machine driven with the time passed in,
// not safe for concurrent use. It remembers, per node, when it last changed
// role and what it was asked, so that it asks nobody to step down within
// Config.MinInterval of stepping up (and the reverse), and keeps asking the
// same nodes while their asks stand.
//
// It ranks by what the server measured itself (Measured): bandwidth,
// reachability, how long it has known the node. CPU and memory it cannot
// see; a node short of them declines, and the planner moves on.
type Planner struct {
	cfg   Config
	log   *zap.Logger
	nodes map[proto.PeerID]*tracked
}

// NewPlanner returns a planner with no memory of the network. Unset fields
// of cfg take their defaults.
func NewPlanner(cfg Config) (*Planner, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Planner{cfg: cfg, log: cfg.Logger, nodes: map[proto.PeerID]*tracked{}}, nil
}

// Score is a node's score as the planner ranks it: the leaves its measured
// bandwidth can serve, times its stability (how long the server has known
// it). It is comparable with the score a node computes of itself when CPU
// and memory are not its bottleneck.
func (p *Planner) Score(m Measured) float64 {
	return p.cfg.leafSlots(clean(m.UpBps), clean(m.DownBps)) * p.cfg.stability(m.Seen)
}

// Need is how many supernodes leaves need at the target ratio with
// headroom, and at least Config.MinSupernodes.
func (p *Planner) Need(leaves int) int { return p.count(leaves, p.cfg.Headroom) }

// keep is the most supernodes kept for leaves: twice the headroom.
func (p *Planner) keep(leaves int) int { return p.count(leaves, 2*p.cfg.Headroom) }

func (p *Planner) count(leaves int, headroom float64) int {
	n := math.Ceil(float64(max(0, leaves)) * (1 + headroom) / p.cfg.LeavesPerSupernode)
	return max(p.cfg.MinSupernodes, int(min(n, math.MaxInt32)))
}

// Plan works out the network's demand at now.
//
// The counts allow for the change they ask for: a leaf that steps up is
// one leaf less and one supernode more, so the plan asks for the fewest
// step-ups d with supernodes+d ≥ Need(leaves−d), and the most step-downs e
// with supernodes−e ≥ Keep(leaves+e). A plan is meant to be made
// periodically (every heartbeat interval, say) and its Demand looked up
// per reply.
func (p *Planner) Plan(now time.Time, n Network) Plan {
	p.observe(now, n)
	leaves := max(0, n.Leaves, len(n.Candidates))
	pl := Plan{At: now, Leaves: leaves}

	var serving, unreachable []Supernode
	for _, s := range p.uniqueSupernodes(n) {
		if s.Measured.Reachable == proto.ReachUnreachable {
			unreachable = append(unreachable, s)
		} else {
			serving = append(serving, s)
		}
	}
	pl.Supernodes = len(serving)
	total := len(serving) + len(unreachable)

	// A supernode the server cannot dial serves nobody: ask it down as long
	// as the floor holds.
	for _, s := range unreachable {
		if total <= p.cfg.MinSupernodes {
			break
		}
		pl.StepDown = append(pl.StepDown, Ranked{ID: s.ID, Score: p.Score(s.Measured)})
		total--
	}

	up := 0
	for up < leaves && pl.Supernodes+up < p.Need(leaves-up) {
		up++
	}
	down := 0
	for down < pl.Supernodes && pl.Supernodes-down-1 >= p.keep(leaves+down+1) && total-down > p.cfg.MinSupernodes {
		down++
	}
	pl.Need, pl.Keep = p.Need(leaves-up), p.keep(leaves+down)
	switch {
	case up > 0:
		pl.StepUp = p.pickUp(now, n.Candidates, up)
		pl.Reason = "short of supernodes"
		if len(pl.StepUp) == 0 {
			pl.Reason = "short of supernodes, no candidate to ask"
		}
	case down > 0:
		pl.StepDown = append(pl.StepDown, p.pickDown(now, serving, down)...)
		pl.Reason = "more supernodes than needed"
	default:
		pl.Reason = "supernode count within the band"
		if sw := p.pickSwap(now, n.Candidates, serving); len(sw) > 0 {
			pl.StepUp, pl.Reason = sw, "a candidate much stronger than the weakest supernode"
		}
	}
	p.settle(now, &pl)
	if len(pl.StepUp) > 0 || len(pl.StepDown) > 0 {
		p.log.Debug("promotion: plan", zap.Int("leaves", pl.Leaves), zap.Int("supernodes", pl.Supernodes),
			zap.Int("need", pl.Need), zap.Int("keep", pl.Keep), zap.Int("step_up", len(pl.StepUp)),
			zap.Int("step_down", len(pl.StepDown)), zap.String("reason", pl.Reason))
	}
	return pl
}

// uniqueSupernodes drops repeated supernodes (the first wins).
func (p *Planner) uniqueSupernodes(n Network) []Supernode {
	out := make([]Supernode, 0, len(n.Supernodes))
	seen := make(map[proto.PeerID]bool, len(n.Supernodes))
	for _, s := range n.Supernodes {
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	return out
}

// observe updates what the planner remembers: role changes (a candidate
// that appears among the supernodes stepped up, and the reverse), idleness,
// declines; and forgets nodes gone for MinInterval, or the longest gone
// when over MaxTracked.
func (p *Planner) observe(now time.Time, n Network) {
	get := func(id proto.PeerID, supernode bool) *tracked {
		t, ok := p.nodes[id]
		if !ok {
			t = &tracked{supernode: supernode, since: now}
			p.nodes[id] = t
		}
		t.seen = now
		return t
	}
	for _, s := range n.Supernodes {
		t := get(s.ID, true)
		if !t.supernode {
			t.supernode, t.since, t.demoted = true, now, false
			t.askedUp, t.askedDown = time.Time{}, time.Time{}
		}
		switch {
		case s.Leaves > 0:
			t.idleSince = time.Time{}
		case t.idleSince.IsZero():
			t.idleSince = now
		}
	}
	for _, c := range n.Candidates {
		if t, ok := p.nodes[c.ID]; ok && t.seen.Equal(now) && t.supernode {
			continue // listed as a supernode too: that wins
		}
		t := get(c.ID, false)
		if t.supernode {
			t.supernode, t.since, t.demoted = false, now, true
			t.askedUp, t.askedDown, t.idleSince = time.Time{}, time.Time{}, time.Time{}
		}
		if c.Declined {
			t.declined, t.askedUp = now.Add(p.cfg.DeclineHold), time.Time{}
		}
	}
	for id, t := range p.nodes {
		if now.Sub(t.seen) > p.cfg.MinInterval {
			delete(p.nodes, id)
		}
	}
	if over := len(p.nodes) - p.cfg.MaxTracked; over > 0 {
		gone := make([]proto.PeerID, 0, len(p.nodes))
		for id, t := range p.nodes {
			if !t.seen.Equal(now) {
				gone = append(gone, id)
			}
		}
		slices.SortFunc(gone, func(a, b proto.PeerID) int { return p.nodes[a].seen.Compare(p.nodes[b].seen) })
		for _, id := range gone[:min(over, len(gone))] {
			delete(p.nodes, id)
		}
	}
}

// pickUp chooses k candidates to ask to step up: reachable, not declined
// lately, not stepped down within MinInterval; those the server has known
// for MinUptime first, then by score (a standing ask counts Stickiness
// higher), then by ID for a stable order. A candidate asked for AskTimeout
// without stepping up counts as having declined.
func (p *Planner) pickUp(now time.Time, cands []Candidate, k int) []Ranked {
	type cand struct {
		Ranked
		key float64
	}
	var cs []cand
	seen := map[proto.PeerID]bool{}
	for _, c := range cands {
		t := p.nodes[c.ID]
		if t == nil || t.supernode || seen[c.ID] || c.Measured.Reachable != proto.ReachPublic {
			continue
		}
		seen[c.ID] = true
		if !t.askedUp.IsZero() && now.Sub(t.askedUp) >= p.cfg.AskTimeout {
			t.declined, t.askedUp = now.Add(p.cfg.DeclineHold), time.Time{}
		}
		if now.Before(t.declined) || t.demoted && now.Sub(t.since) < p.cfg.MinInterval {
			continue
		}
		r := Ranked{ID: c.ID, Score: p.Score(c.Measured), Young: c.Measured.Seen < p.cfg.MinUptime}
		key := r.Score
		if !t.askedUp.IsZero() {
			key *= 1 + p.cfg.Stickiness
		}
		cs = append(cs, cand{r, key})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.Young != b.Young {
			if a.Young {
				return 1
			}
			return -1
		}
		if a.key != b.key {
			if a.key > b.key {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	out := make([]Ranked, 0, min(k, len(cs)))
	for _, c := range cs[:min(k, len(cs))] {
		out = append(out, c.Ranked)
	}
	return out
}

// pickSwap returns the best candidate when its score is more than
// Config.SwapFactor times the weakest supernode's that could step down
// (young candidates only against young supernodes); else nothing.
func (p *Planner) pickSwap(now time.Time, cands []Candidate, serving []Supernode) []Ranked {
	if p.cfg.SwapFactor <= 0 || len(serving) == 0 {
		return nil
	}
	weak := p.pickDown(now, serving, 1)
	best := p.pickUp(now, cands, 1)
	if len(weak) == 0 || len(best) == 0 || !(best[0].Score > p.cfg.SwapFactor*weak[0].Score) {
		return nil
	}
	if best[0].Young {
		for _, s := range serving {
			if s.ID == weak[0].ID && s.Measured.Seen >= p.cfg.MinUptime {
				return nil
			}
		}
	}
	return best
}

// pickDown chooses k supernodes to ask to step down, among those that have
// been supernodes for MinInterval: idle ones first (longest idle first),
// then the weakest (a standing ask counts Stickiness lower), then those
// with the fewest leaves, then by ID.
func (p *Planner) pickDown(now time.Time, sns []Supernode, k int) []Ranked {
	if k <= 0 {
		return nil
	}
	type sn struct {
		Ranked
		key       float64
		idleSince time.Time
		leaves    int
	}
	var ss []sn
	for _, s := range sns {
		t := p.nodes[s.ID]
		if t == nil || s.Pinned || now.Sub(t.since) < p.cfg.MinInterval {
			continue
		}
		idle := !t.idleSince.IsZero() && now.Sub(t.idleSince) >= p.cfg.IdleAfter
		r := Ranked{ID: s.ID, Score: p.Score(s.Measured), Idle: idle}
		key := r.Score
		if !t.askedDown.IsZero() {
			key *= 1 - min(p.cfg.Stickiness, 0.99)
		}
		ss = append(ss, sn{r, key, t.idleSince, s.Leaves})
	}
	slices.SortFunc(ss, func(a, b sn) int {
		switch {
		case a.Idle != b.Idle:
			if a.Idle {
				return -1
			}
			return 1
		case a.Idle && !a.idleSince.Equal(b.idleSince):
			return a.idleSince.Compare(b.idleSince)
		case a.key != b.key:
			if a.key < b.key {
				return -1
			}
			return 1
		case a.leaves != b.leaves:
			return a.leaves - b.leaves
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	out := make([]Ranked, 0, min(k, len(ss)))
	for _, s := range ss[:min(k, len(ss))] {
		out = append(out, s.Ranked)
	}
	return out
}

// settle records the asks of pl: new asks start their clocks, asks no
// longer made are dropped.
func (p *Planner) settle(now time.Time, pl *Plan) {
	up := make(map[proto.PeerID]bool, len(pl.StepUp))
	down := make(map[proto.PeerID]bool, len(pl.StepDown))
	for _, r := range pl.StepUp {
		up[r.ID] = true
	}
	for _, r := range pl.StepDown {
		down[r.ID] = true
	}
	for id, t := range p.nodes {
		switch {
		case up[id]:
			if t.askedUp.IsZero() {
				t.askedUp = now
			}
		default:
			t.askedUp = time.Time{}
		}
		switch {
		case down[id]:
			if t.askedDown.IsZero() {
				t.askedDown = now
			}
		default:
			t.askedDown = time.Time{}
		}
	}
}
