package promotion

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// This file is an in-process, deterministic simulation of promotion: nodes
// with capacities drawn from a wide spread join (and, with churn, leave),
// each round every node measures itself with noise and runs its Policy,
// and a bootstrap server runs the Planner on what it measured. It drives
// the same Policy and Planner the daemon uses; time is logical (rounds) and
// all randomness comes from one seeded generator, so a seed replays
// exactly. The tests and benchmarks of this package run it.

// simConfig describes one simulated network.
type simConfig struct {
	Seed uint64
	// Policy configures every node and the planner.
	Policy Config
	// Round is the logical time between two rounds (a node decides once
	// per round; the bootstrap server plans once per round).
	Round time.Duration
	// Nodes is how many nodes join at the start; with churn, newcomers
	// arrive as a Poisson process at the rate that keeps this many online
	// on average, so the population wanders around it as a real one does.
	Nodes int
	// Churn draws each node's session length from a Weibull distribution
	// with this shape and scale; zero scale: nobody leaves.
	ChurnShape float64
	ChurnScale time.Duration
	// Noise is the standard deviation of the log of the multiplicative
	// noise on every measurement (a node's own and the server's probes).
	Noise float64
	// ProbeEvery is how often the server re-measures a node's bandwidth.
	ProbeEvery time.Duration
	// Unreachable is the share of ordinary nodes that cannot be dialled;
	// StrongUnreachable the share of nodes ten times stronger than the
	// rest and unreachable (they must never step up).
	Unreachable, StrongUnreachable float64
}

// simNode is one simulated node.
type simNode struct {
	id        proto.PeerID
	truth     Capacity // noise-free, without uptime
	reachable bool
	joined    time.Time
	leaves    time.Time // departure; zero: stays
	policy    *Policy

	probed        time.Time // the server's last probe
	probeUp, prDn float64   // its result

	everSupernode bool
}

// simStats is what a simulation counts.
type simStats struct {
	Rounds      int
	Promotions  int
	Demotions   int
	NodeHours   float64
	Supernodes  float64 // sum over rounds, for the mean
	NeedMet     int     // rounds with at least Plan.Need supernodes
	Departures  int
	BadPromoted int // unreachable nodes ever promoted (must stay 0)
}

// simulation is a running simulated network.
type simulation struct {
	cfg     simConfig
	rng     *rand.Rand
	now     time.Time
	nextID  uint64
	nodes   []*simNode
	planner *Planner
	plan    Plan
	counted bool // count stats (false during warm-up)
	stats   simStats
}

func newSimulation(cfg simConfig) (*simulation, error) {
	pl, err := NewPlanner(cfg.Policy)
	if err != nil {
		return nil, err
	}
	s := &simulation{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		now:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		planner: pl,
		counted: true,
	}
	for range cfg.Nodes {
		if err := s.join(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// join adds a node with a capacity drawn from the spread.
func (s *simulation) join() error {
	p, err := NewPolicy(s.cfg.Policy, proto.RoleLeaf)
	if err != nil {
		return err
	}
	s.nextID++
	n := &simNode{policy: p, joined: s.now}
	binary.BigEndian.PutUint64(n.id[:8], s.nextID)
	n.truth, n.reachable = s.drawCapacity()
	if s.cfg.ChurnScale > 0 {
		n.leaves = s.now.Add(s.weibull())
	}
	s.nodes = append(s.nodes, n)
	return nil
}

// drawCapacity draws a node: upload log-normal around 150 KB/s (a tenth of
// nodes under 40 KB/s, a tenth over 560 KB/s), download 2 to 8 times that,
// a mix of core counts and memory sizes, some nodes busy, some unreachable.
func (s *simulation) drawCapacity() (Capacity, bool) {
	r := s.rng
	c := Capacity{UpBps: 150_000 * math.Exp(r.NormFloat64())}
	c.DownBps = c.UpBps * (2 + 6*r.Float64())
	c.Cores = pickWeighted(r, []float64{0.5, 1, 2, 4, 8}, []float64{10, 30, 30, 20, 10})
	c.MemBytes = uint64(pickWeighted(r, []float64{64 << 20, 256 << 20, 1 << 30, 4 << 30}, []float64{10, 30, 40, 20}))
	c.IndexOpsPerSec = c.Cores * 100_000 * (0.7 + 0.6*r.Float64())
	c.Load1 = 0.8 * r.Float64()
	if r.Float64() < 0.05 {
		c.Load1 = 3
	}
	reachable := r.Float64() >= s.cfg.Unreachable
	if r.Float64() < s.cfg.StrongUnreachable {
		c.UpBps *= 10
		c.DownBps *= 10
		c.Cores, c.MemBytes, c.Load1 = 8, 8<<30, 0.1
		reachable = false
	}
	return c, reachable
}

func pickWeighted(r *rand.Rand, vs, ws []float64) float64 {
	var sum float64
	for _, w := range ws {
		sum += w
	}
	x := r.Float64() * sum
	for i, w := range ws {
		if x < w {
			return vs[i]
		}
		x -= w
	}
	return vs[len(vs)-1]
}

// weibull draws a session length (inverse transform).
func (s *simulation) weibull() time.Duration {
	u := 1 - s.rng.Float64() // (0, 1]
	x := s.cfg.ChurnScale.Seconds() * math.Pow(-math.Log(u), 1/s.cfg.ChurnShape)
	return time.Duration(min(x, 1e6) * float64(time.Second))
}

// arrivalRate is the arrivals per second that keep cfg.Nodes online on
// average: nodes / mean session (an M/G/∞ queue), the mean of a Weibull
// session being scale × Γ(1 + 1/shape).
func (s *simulation) arrivalRate() float64 {
	mean := s.cfg.ChurnScale.Seconds() * math.Gamma(1+1/s.cfg.ChurnShape)
	return float64(s.cfg.Nodes) / mean
}

// poisson draws a Poisson count of the given mean (Knuth's method: the
// means here are small).
func (s *simulation) poisson(mean float64) int {
	limit, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= s.rng.Float64()
		if p <= limit {
			return k
		}
		k++
	}
}

// noisy multiplies x by log-normal noise.
func (s *simulation) noisy(x float64) float64 {
	return x * math.Exp(s.cfg.Noise*s.rng.NormFloat64())
}

// step runs one round: churn, measurements, the server's plan, every
// node's decision.
func (s *simulation) step() error {
	s.now = s.now.Add(s.cfg.Round)
	if s.cfg.ChurnScale > 0 {
		kept := s.nodes[:0]
		gone := 0
		for _, n := range s.nodes {
			if !n.leaves.IsZero() && !s.now.Before(n.leaves) {
				gone++
				continue
			}
			kept = append(kept, n)
		}
		clear(s.nodes[len(kept):])
		s.nodes = kept
		for range s.poisson(s.arrivalRate() * s.cfg.Round.Seconds()) {
			if err := s.join(); err != nil {
				return err
			}
		}
		if s.counted {
			s.stats.Departures += gone
		}
	}

	// Each node measures itself.
	for _, n := range s.nodes {
		c := n.truth
		c.UpBps, c.DownBps = s.noisy(c.UpBps), s.noisy(c.DownBps)
		c.IndexOpsPerSec = s.noisy(c.IndexOpsPerSec)
		c.MemBytes = uint64(s.noisy(float64(c.MemBytes)))
		c.Uptime = s.now.Sub(n.joined)
		c.Reachable = proto.ReachUnreachable
		if n.reachable {
			c.Reachable = proto.ReachPublic
		}
		c.MeasuredAt = s.now
		n.policy.Observe(s.now, c)
	}

	// The bootstrap server plans from what it measured.
	var net Network
	supernodes := 0
	for _, n := range s.nodes {
		if n.policy.Role() == proto.RoleSupernode {
			supernodes++
		}
	}
	leaves := len(s.nodes) - supernodes
	perSN, extra, i := 0, 0, 0
	if supernodes > 0 {
		perSN, extra = leaves/supernodes, leaves%supernodes
	}
	for _, n := range s.nodes {
		if n.probed.IsZero() || s.now.Sub(n.probed) >= s.cfg.ProbeEvery {
			n.probed, n.probeUp, n.prDn = s.now, s.noisy(n.truth.UpBps), s.noisy(n.truth.DownBps)
		}
		m := Measured{Reachable: proto.ReachUnreachable, UpBps: n.probeUp, DownBps: n.prDn, Seen: s.now.Sub(n.joined)}
		if n.reachable {
			m.Reachable = proto.ReachPublic
		}
		if n.policy.Role() == proto.RoleSupernode {
			l := perSN
			if i < extra {
				l++
			}
			i++
			net.Supernodes = append(net.Supernodes, Supernode{ID: n.id, Measured: m, Leaves: l})
		} else {
			// What the node's join or heartbeat says: whether it declines.
			net.Candidates = append(net.Candidates, Candidate{ID: n.id, Measured: m, Declined: n.policy.Declining(s.now)})
		}
	}
	net.Leaves = leaves
	s.plan = s.planner.Plan(s.now, net)

	// Every node decides.
	for _, n := range s.nodes {
		d := n.policy.Decide(s.now, s.plan.Demand(n.id))
		if n.policy.Role() == proto.RoleSupernode && !n.everSupernode {
			n.everSupernode = true
			if !n.reachable {
				s.stats.BadPromoted++
			}
		}
		if !s.counted {
			continue
		}
		switch d.Action {
		case Promote:
			s.stats.Promotions++
		case Demote:
			s.stats.Demotions++
		}
	}
	if s.counted {
		s.stats.Rounds++
		s.stats.NodeHours += float64(len(s.nodes)) * s.cfg.Round.Hours()
		sn := s.supernodes()
		s.stats.Supernodes += float64(len(sn))
		if len(sn) >= s.planner.Need(len(s.nodes)-len(sn)) {
			s.stats.NeedMet++
		}
	}
	return nil
}

// supernodes returns the current supernodes.
func (s *simulation) supernodes() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if n.policy.Role() == proto.RoleSupernode {
			out = append(out, n)
		}
	}
	return out
}

// overlap compares the supernode set S with the k best nodes T by
// capacity among those that can serve: reachable, and passing every gate
// but uptime. k is the supernode count clamped to the planner's band
// [Need, Keep]. It returns |S ∩ T| / max(|S|, k).
//
// measured ranks by what was measured: the server's probes, among nodes
// whose own measurements pass the gates (those not declining). Otherwise
// it ranks by the noise-free capacities the measurements scatter around:
// the ideal, which noise alone can keep out of reach when two nodes are
// closer than the noise.
func (s *simulation) overlap(measured bool) float64 {
	sn := s.supernodes()
	leaves := len(s.nodes) - len(sn)
	k := min(max(len(sn), s.planner.Need(leaves)), s.planner.keep(leaves))
	type scored struct {
		n     *simNode
		score float64
	}
	var ok []scored
	cfg := &s.planner.cfg
	for _, n := range s.nodes {
		if !n.reachable {
			continue
		}
		if measured {
			if n.policy.Role() == proto.RoleSupernode || !n.policy.Declining(s.now) {
				ok = append(ok, scored{n, cfg.leafSlots(n.probeUp, n.prDn)})
			}
			continue
		}
		c := n.truth
		if c.UpBps < cfg.MinUpBps || c.DownBps < cfg.MinDownBps || c.Cores < cfg.MinCores ||
			c.MemBytes < cfg.MinMemBytes || cfg.MaxLoad1 > 0 && c.Load1 > cfg.MaxLoad1 {
			continue
		}
		ok = append(ok, scored{n, cfg.leafSlots(c.UpBps, c.DownBps)})
	}
	slices.SortFunc(ok, func(a, b scored) int {
		if a.score > b.score {
			return -1
		}
		if a.score < b.score {
			return 1
		}
		return 0
	})
	top := map[*simNode]bool{}
	for _, x := range ok[:min(k, len(ok))] {
		top[x.n] = true
	}
	hit := 0
	for _, n := range sn {
		if top[n] {
			hit++
		}
	}
	den := max(len(sn), k)
	if den == 0 {
		return 1
	}
	return float64(hit) / float64(den)
}
