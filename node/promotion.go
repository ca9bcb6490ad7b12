package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/bootstrap"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

// The promotion runtime: every check-in interval the node measures itself
// (promotion.Measurer: transfer rates or a bandwidth probe, cores, memory,
// load, an index benchmark, uptime), checks in with a bootstrap server
// (which dials it back and answers with the network's demand), and feeds
// both to its promotion.Policy. With --role auto it carries out what the
// policy decides: Promote starts the supernode role (becomeSupernode),
// Demote hands the leaves off to other supernodes, then makes the node a
// leaf again (stepDown). Pinned roles are measured and shown, never changed.

// probeBytes is the bandwidth probe asked for each way. The server times
// the last three quarters of it, past the upload cap's burst (64 KB), so
// the cap shows.
const probeBytes = 256 << 10

// Bounds on the check-in interval a bootstrap server may ask for, and the
// interval while a role change is asked for.
const (
	minCheckIn  = 100 * time.Millisecond
	maxCheckIn  = 10 * time.Minute
	fastCheckIn = time.Second
)

// handOffWait bounds how long a supernode stepping down waits for its
// leaves to reattach elsewhere, and how long it then waits to be attached
// itself before it stops serving.
const handOffWait = 5 * time.Second

// PromotionStatus is the promotion engine's state, in Status.
type PromotionStatus struct {
	// Policy holds the current measurements (capacity), score, hold-down
	// and the recent decisions with their inputs, oldest first.
	Policy promotion.PolicyStatus `json:"policy"`
	// Reachable is the last dial-back result a bootstrap server reported.
	Reachable proto.Reachability `json:"reachable"`
	// Demand is the last demand a bootstrap server sent.
	Demand promotion.Demand `json:"demand"`
	// Bootstrap is the server that answered the last check-in.
	Bootstrap    string    `json:"bootstrap,omitempty"`
	LastCheckIn  time.Time `json:"last_check_in,omitzero"`
	CheckInError string    `json:"check_in_error,omitempty"`
}

// promoter is the node's promotion state.
type promoter struct {
	meter    *promotion.RateMeter
	measurer *promotion.Measurer
	history  *promotion.History

	mu        sync.Mutex // guards the fields below
	policy    *promotion.Policy
	reach     proto.Reachability
	demand    promotion.Demand
	bootstrap string
	lastAt    time.Time
	lastErr   string
	every     time.Duration
	measured  bool // observed at least once
	rated     bool // and with upload and download rates
}

// initPromotion makes the node's measurer and policy; Run calls it.
func (n *Node) initPromotion() error {
	meter, err := promotion.NewRateMeter(promotion.RateMeterConfig{})
	if err != nil {
		return err
	}
	p := &promoter{meter: meter, history: promotion.LoadHistory(n.cfg.StateDir, time.Now(), n.log.Named("promotion")),
		every: time.Second}
	// A pinned node is measured for status, but does not cost a bootstrap
	// server probes.
	var probe promotion.Prober
	if n.cfg.Role == RoleAuto {
		probe = n.probe
	}
	p.measurer, err = promotion.NewMeasurer(promotion.MeasureConfig{
		Meter: meter, Probe: probe, ProbeEvery: n.cfg.ProbeEvery, History: p.history,
		Reachability: func() proto.Reachability { p.mu.Lock(); defer p.mu.Unlock(); return p.reach },
		BenchFiles:   n.cfg.BenchFiles, Logger: n.log.Named("promotion"),
	})
	if err != nil {
		return err
	}
	role := proto.RoleLeaf
	if n.cfg.Role == RoleSupernode {
		role = proto.RoleSupernode
	}
	pc := n.cfg.Promotion
	pc.Logger = n.log.Named("promotion")
	if p.policy, err = promotion.NewPolicy(pc, role); err != nil {
		return err
	}
	n.prom = p
	return nil
}

// probe is the Measurer's Prober: a bandwidth probe with the bootstrap
// server that answered the last check-in, the node's bytes paced by its
// upload cap.
func (n *Node) probe(ctx context.Context) (up, down float64, err error) {
	n.prom.mu.Lock()
	addr := n.prom.bootstrap
	n.prom.mu.Unlock()
	if addr == "" {
		if len(n.cfg.Bootstraps) == 0 {
			return 0, 0, fmt.Errorf("no bootstrap server to probe bandwidth with")
		}
		addr = n.cfg.Bootstraps[0]
	}
	return n.bootstrapClient().Probe(ctx, addr, probeBytes, n.up.Pace)
}

// promotionLoop runs the promotion engine until ctx ends: check-ins and
// decisions every check-in interval, and the measurements in a goroutine of
// their own (a probe or the index benchmark takes seconds, and must not
// delay the check-ins that keep the node known to the planner).
func (n *Node) promotionLoop(ctx context.Context) {
	p := n.prom
	defer func() {
		p.history.End(time.Now())
		if err := p.history.Save(); err != nil {
			n.log.Warn("cannot save the session history", zap.Error(err))
		}
	}()
	checkedIn := make(chan struct{})
	var once sync.Once
	n.goRun(func() { n.measureLoop(ctx, checkedIn) })
	meterTick := time.NewTicker(time.Second)
	defer meterTick.Stop()
	var lastUp, lastDown uint64
	feed := func() {
		now := time.Now()
		up := n.up.Status().BytesTotal
		var down uint64
		for _, d := range n.dl.List() {
			down += d.Done
		}
		if up > lastUp {
			p.meter.Observe(now, int64(up-lastUp), promotion.Upload)
		}
		if down > lastDown {
			p.meter.Observe(now, int64(down-lastDown), promotion.Download)
		}
		lastUp, lastDown = up, down
	}
	feed()
	for ctx.Err() == nil {
		if n.promotionStep(ctx) || len(n.cfg.Bootstraps) == 0 {
			once.Do(func() { close(checkedIn) })
		}
		next := time.NewTimer(p.interval())
	wait:
		for {
			select {
			case <-ctx.Done():
				next.Stop()
				return
			case <-meterTick.C:
				feed()
			case <-next.C:
				break wait
			}
		}
	}
}

// interval is the time to the next check-in: the bootstrap server's
// interval, or at most fastCheckIn while the node is asked to change role
// or not yet measured, so a network that just started gets its supernodes
// within seconds (the hold-down, not the check-in interval, is what keeps
// roles from flapping).
func (p *promoter) interval() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.demand.Ask != promotion.AskNone || !p.rated {
		return min(p.every, fastCheckIn)
	}
	return p.every
}

// measureLoop measures the node every check-in interval, from the first
// check-in on (a bootstrap server answers probes only for nodes it knows).
func (n *Node) measureLoop(ctx context.Context, checkedIn <-chan struct{}) {
	p := n.prom
	select {
	case <-ctx.Done():
		return
	case <-checkedIn:
	}
	for {
		c, err := p.measurer.Measure(ctx)
		if err != nil {
			return // ctx ended
		}
		p.mu.Lock()
		p.policy.Observe(time.Now(), c)
		p.measured = true
		p.rated = p.rated || c.UpBps > 0 && c.DownBps > 0
		p.mu.Unlock()
		sleepCtx(ctx, p.interval())
		if ctx.Err() != nil {
			return
		}
	}
}

// promotionStep is one round: check in, decide, act. It reports whether a
// bootstrap server answered.
func (n *Node) promotionStep(ctx context.Context) bool {
	p := n.prom
	auto := n.cfg.Role == RoleAuto
	now := time.Now()
	p.mu.Lock()
	role := p.policy.Role()
	// A leaf not yet measured (its rates included), or not yet told whether
	// it is reachable, does not know whether it would decline, and does not
	// say so: a refusal keeps the planner away for a while, and the planner
	// asks only nodes it has probed itself. A pinned node always declines.
	declining := !auto || p.rated && p.reach != proto.ReachUnknown && p.policy.Declining(now)
	p.mu.Unlock()

	answered := false
	if len(n.cfg.Bootstraps) > 0 {
		cctx, cancel := context.WithTimeout(ctx, bootstrap.AttemptTimeout)
		reply, addr, err := n.bootstrapClient().CheckIn(cctx, n.cfg.Bootstraps, &proto.CheckIn{Role: role, Auto: auto, Declining: declining})
		cancel()
		p.mu.Lock()
		if err != nil {
			if ctx.Err() == nil && p.lastErr == "" {
				n.log.Warn("promotion check-in failed; will keep trying", zap.Error(err))
			}
			p.lastErr = err.Error()
		} else {
			answered = true
			p.lastErr, p.bootstrap, p.lastAt = "", addr, time.Now()
			p.reach = reply.Reachable
			p.policy.SetReachable(reply.Reachable)
			n.setReach(ctx, reply.Reachable)
			p.demand = promotion.Demand{Ask: promotion.Ask(reply.Ask), AcceptYoung: reply.AcceptYoung,
				Supernodes: int(reply.Supernodes), Need: int(reply.Need), Leaves: int(reply.Leaves)}
			if reply.CheckInMillis > 0 {
				p.every = min(maxCheckIn, max(minCheckIn, time.Duration(reply.CheckInMillis)*time.Millisecond))
			}
		}
		p.mu.Unlock()
	}
	if !auto {
		return answered
	}
	now = time.Now()
	p.mu.Lock()
	if !p.measured {
		p.mu.Unlock()
		return answered
	}
	// The role can change by other means (a failed step, a pinned start).
	if actual := n.Role(); actual != p.policy.Role() {
		p.policy.SetRole(now, actual, "the node's role is "+actual.String())
	}
	dec := p.policy.Decide(now, p.demand)
	p.mu.Unlock()
	switch dec.Action {
	case promotion.Promote:
		n.becomeSupernode(ctx, fmt.Sprintf("promotion: %s (score %.0f, %d supernodes for %d leaves, %d wanted)",
			dec.Reason, dec.Score, dec.Demand.Supernodes, dec.Demand.Leaves, dec.Demand.Need))
	case promotion.Demote:
		n.stepDown(ctx, dec.Reason)
	}
	return answered
}

// stepDown makes a supernode a leaf again without losing a leaf's
// searchability: it stops taking leaves, tells each to move (they attach
// elsewhere before they say goodbye), waits for them (at most handOffWait),
// attaches itself as a leaf, and only then stops serving. The next
// check-in, as a leaf, deregisters it from the bootstrap server.
func (n *Node) stepDown(ctx context.Context, why string) {
	n.mu.Lock()
	rt, stop := n.sn, n.snStop
	n.mu.Unlock()
	if rt == nil {
		return
	}
	var peers []proto.PeerInfo
	if len(n.cfg.Bootstraps) > 0 {
		jctx, cancel := context.WithTimeout(ctx, bootstrap.AttemptTimeout)
		if reply, _, err := n.bootstrapClient().Join(jctx, n.cfg.Bootstraps, proto.RoleLeaf); err == nil {
			peers = reply.Supernodes
		}
		cancel()
	}
	hctx, cancel := context.WithTimeout(ctx, handOffWait)
	told, left := rt.HandOff(hctx, peers, why)
	cancel()
	n.note(fmt.Sprintf("stepping down: %s; told %d leaves to move, %d still attached", why, told, left))

	leafDone := make(chan struct{})
	n.mu.Lock()
	n.role, n.leafDone = proto.RoleLeaf, leafDone
	n.mu.Unlock()
	n.swapBootstrapClient()
	stop() // the heartbeats end: Register is refused on a leaf's session anyway
	n.goRun(func() { defer close(leafDone); n.leafLoop(ctx) })
	// Keep serving our own files until we are attached elsewhere.
	deadline := time.NewTimer(handOffWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for attached := false; !attached; {
		select {
		case <-ctx.Done():
			attached = true
		case <-deadline.C:
			attached = true
		case <-tick.C:
			n.mu.Lock()
			attached = len(n.atts) > 0
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	n.sn, n.snStop = nil, nil
	n.mu.Unlock()
	rt.Close()
	n.note("became a leaf: " + why)
}

// swapBootstrapClient replaces the bootstrap client with one whose hello
// presents the node's current role (a bootstrap accepts Register only on a
// supernode's session), and closes the old one.
func (n *Node) swapBootstrapClient() {
	n.mu.Lock()
	old := n.bc
	n.bc = bootstrap.NewClient(n.tr, n.helloLocked(), n.log.Named("bootstrap"))
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// promotionStatus is the promotion engine's state for Status.
func (n *Node) promotionStatus() *PromotionStatus {
	p := n.prom
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &PromotionStatus{Policy: p.policy.Status(), Reachable: p.reach, Demand: p.demand,
		Bootstrap: p.bootstrap, LastCheckIn: p.lastAt, CheckInError: p.lastErr}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
