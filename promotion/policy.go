package promotion

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// Action is what a decision does to a node's role.
type Action uint8

const (
	Stay    Action = 0
	Promote Action = 1 // leaf → supernode
	Demote  Action = 2 // supernode → leaf (after handing its leaves off)
)

var actionNames = [...]string{"stay", "promote", "demote"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// MarshalJSON prints the action's name.
func (a Action) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, a.String()), nil }

// UnmarshalJSON reads an action's name (clients of the status API).
func (a *Action) UnmarshalJSON(b []byte) error {
	v, err := unmarshalName(b, actionNames[:], "action")
	*a = Action(v)
	return err
}

// unmarshalName reads a quoted name from names and returns its index.
func unmarshalName(b []byte, names []string, what string) (uint8, error) {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: want a quoted name, got %s", what, b)
	}
	for i, n := range names {
		if n == s {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, s)
}

// Ask is what a bootstrap server asks of a node.
type Ask uint8

const (
	AskNone     Ask = 0
	AskStepUp   Ask = 1
	AskStepDown Ask = 2
)

var askNames = [...]string{"none", "step-up", "step-down"}

func (a Ask) String() string {
	if int(a) < len(askNames) {
		return askNames[a]
	}
	return "ask(" + strconv.Itoa(int(a)) + ")"
}

// MarshalJSON prints the ask's name.
func (a Ask) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, a.String()), nil }

// UnmarshalJSON reads an ask's name (clients of the status API).
func (a *Ask) UnmarshalJSON(b []byte) error {
	v, err := unmarshalName(b, askNames[:], "ask")
	*a = Ask(v)
	return err
}

// Demand is what the network wants of one node, as computed by a bootstrap
// server's Planner (Plan.Demand) and carried to the node in its join or
// heartbeat reply. The counts are for the node's logs and status; only Ask,
// AcceptYoung and Supernodes change its decision.
type Demand struct {
	Ask Ask `json:"ask"`
	// AcceptYoung waives the uptime gate: the bootstrap server had no
	// candidate with Config.MinUptime to ask (a network that just started).
	AcceptYoung bool `json:"accept_young,omitempty"`
	// Supernodes, Need and Leaves are the bootstrap server's counts: live
	// supernodes, how many the network wants, attached leaves. Supernodes
	// is 0 when the node has heard from no bootstrap server.
	Supernodes int `json:"supernodes"`
	Need       int `json:"need"`
	Leaves     int `json:"leaves"`
}

// Gate is one eligibility test, with what was measured and what it needs,
// for logs and `strata status`.
type Gate struct {
	Name string `json:"name"`
	Have string `json:"have"`
	Want string `json:"want"`
	OK   bool   `json:"ok"`
}

// Decision is one call of Policy.Decide: what the inputs call for, what was
// done, why, and every input.
type Decision struct {
	At time.Time `json:"at"`
	// Role is the node's role when deciding (before any change).
	Role proto.Role `json:"role"`
	// Want is what the inputs call for; Action is what was done. They
	// differ while the change waits (Blocked).
	Want   Action `json:"want"`
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Blocked says why Want was not acted on yet: "confidence" (fewer than
	// Config.Confidence decisions in a row wanted it) or "hold-down" (too
	// soon after the last role change).
	Blocked string `json:"blocked,omitempty"`
	// Decline tells the runtime to let the bootstrap server know that this
	// leaf will not step up now (not eligible, or in hold-down: see
	// Declining), so it asks another. Declining can only lower a node's
	// chances, so the server may believe it.
	Decline bool `json:"decline,omitempty"`
	// Eligible is whether every gate passed (the stay gates for a
	// supernode, the step-up gates for a leaf).
	Eligible bool `json:"eligible"`
	// Score is how many leaves the node could serve, weighted by stability.
	Score float64 `json:"score"`
	Gates []Gate  `json:"gates"`
	// Capacity is the smoothed measurement the decision used.
	Capacity Capacity `json:"capacity"`
	Demand   Demand   `json:"demand"`
	// Streak is how many decisions in a row have wanted Want.
	Streak int `json:"streak"`
	// HoldUntil is when the hold-down after the last role change ends
	// (zero: no change yet).
	HoldUntil time.Time `json:"hold_until,omitzero"`
}

// DecisionRecord is an entry of the decision history: a run of identical
// consecutive decisions (same role, want, action, reason, block), shown by
// the latest with its inputs.
type DecisionRecord struct {
	Decision
	// FirstAt is when the run began; Decision.At is its latest.
	FirstAt time.Time `json:"first_at"`
	// Repeats is how many decisions the run holds.
	Repeats int `json:"repeats"`
}

// PolicyStatus is a Policy's state for `strata status`.
type PolicyStatus struct {
	Role proto.Role `json:"role"`
	// Measured is false until the first Observe.
	Measured bool     `json:"measured"`
	Capacity Capacity `json:"capacity"`
	Score    float64  `json:"score"`
	// LastChange is the last role change (zero: none); no other change
	// before HoldUntil; Hold is the current hold-down.
	LastChange time.Time     `json:"last_change,omitzero"`
	HoldUntil  time.Time     `json:"hold_until,omitzero"`
	Hold       time.Duration `json:"hold_ns"`
	Changes    int           `json:"changes"`
	// Decisions are the recent decisions, oldest first.
	Decisions []DecisionRecord `json:"decisions"`
}

// Policy decides, for one node, when to step up to supernode and when to
// step down. It is a plain state machine (sans I/O): measurements go in with
// Observe, the network's demand with Decide, and Decide returns what to do.
// The runtime owns the measuring, the timers and the role change itself;
// the simulator drives the same code.
//
// Its inputs are the node's own measurements (Capacity, from a Measurer)
// and the demand a bootstrap server computed from what it measured itself:
// nothing another node says about itself reaches it.
//
// A leaf steps up only when asked (demand exists) and eligible: reachable
// (a node that cannot be dialled is never eligible), enough upload and
// download, cores and memory, not overloaded, and an uptime or average
// session of Config.MinUptime unless the bootstrap server waives it. A
// supernode steps down when asked, when it becomes unreachable, or when its
// measurements fall below the stay band (a fraction of the step-up
// thresholds) while other supernodes exist.
//
// Against flapping: a change needs Config.Confidence consecutive decisions
// wanting it, and waits out a hold-down after the previous change
// (Config.MinInterval, doubling up to Config.MaxBackoff when changes come
// in quick succession). Unreachability skips the hold-down: such a
// supernode serves nobody.
//
// A Policy is not safe for concurrent use; its owner serialises calls.
type Policy struct {
	cfg  Config
	log  *zap.Logger
	role proto.Role

	cap      Capacity // smoothed
	measured bool

	lastChange time.Time
	hold       time.Duration
	changes    int

	want   Action
	streak int

	hist []DecisionRecord // oldest first, at most cfg.HistorySize
}

// NewPolicy returns a policy for a node starting in role (a leaf or a
// supernode; unknown is a leaf). Unset fields of cfg take their defaults.
func NewPolicy(cfg Config, role proto.Role) (*Policy, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	switch role {
	case proto.RoleUnknown:
		role = proto.RoleLeaf
	case proto.RoleLeaf, proto.RoleSupernode:
	default:
		return nil, fmt.Errorf("promotion: a node's policy starts as a leaf or a supernode, not %v", role)
	}
	return &Policy{cfg: cfg, log: cfg.Logger, role: role}, nil
}

// Role is the node's current role as the policy knows it.
func (p *Policy) Role() proto.Role { return p.role }

// Observe feeds a measurement. Rates, cores, memory, index speed and load
// enter a moving average (Config.Smoothing); uptime and reachability are
// taken as they are. Negative or non-finite values count as zero.
func (p *Policy) Observe(now time.Time, c Capacity) {
	c.UpBps, c.DownBps, c.Cores = clean(c.UpBps), clean(c.DownBps), clean(c.Cores)
	c.IndexOpsPerSec, c.Load1 = clean(c.IndexOpsPerSec), clean(c.Load1)
	c.Uptime, c.AvgSession = max(0, c.Uptime), max(0, c.AvgSession)
	if c.MeasuredAt.IsZero() {
		c.MeasuredAt = now
	}
	if !p.measured {
		p.cap, p.measured = c, true
		return
	}
	a := p.cfg.Smoothing
	ew := func(old, v float64) float64 { return old + a*(v-old) }
	s := &p.cap
	s.UpBps, s.DownBps = ew(s.UpBps, c.UpBps), ew(s.DownBps, c.DownBps)
	s.Cores, s.IndexOpsPerSec = ew(s.Cores, c.Cores), ew(s.IndexOpsPerSec, c.IndexOpsPerSec)
	s.MemBytes = uint64(ew(float64(s.MemBytes), float64(c.MemBytes)))
	s.Load1 = ew(s.Load1, c.Load1)
	s.Uptime, s.AvgSession, s.Reachable, s.MeasuredAt = c.Uptime, c.AvgSession, c.Reachable, c.MeasuredAt
}

// SetReachable records a new dial-back result as soon as a bootstrap server
// reports it (reachability is taken as it is, like in Observe), so the next
// Decide and Declining use it rather than the last full measurement's: a
// node asked to step up while its first dial-back was still running must not
// decline for a result that is already known. Before the first measurement
// it does nothing.
func (p *Policy) SetReachable(r proto.Reachability) {
	if p.measured {
		p.cap.Reachable = r
	}
}

func clean(x float64) float64 {
	if x > 0 && !math.IsInf(x, 1) {
		return x
	}
	return 0
}

// Decide looks at the latest measurements and the demand and returns what
// to do. When the Action is Promote or Demote the policy's role has
// changed: the runtime carries it out (a demotion hands the leaves off
// first), and calls SetRole if it cannot. Every decision goes into the
// history shown by Status.
func (p *Policy) Decide(now time.Time, d Demand) Decision {
	dec := Decision{At: now, Role: p.role, Demand: d, Capacity: p.cap, HoldUntil: p.holdUntil()}
	if !p.measured {
		dec.Reason = "no measurement yet"
		p.want, p.streak = Stay, 0
		p.record(dec)
		return dec
	}
	sn := p.role == proto.RoleSupernode
	gs := p.check(d, sn)
	dec.Gates, dec.Eligible = p.describe(gs), gs.all()
	dec.Score = p.cfg.score(p.cap)

	want, urgent := Stay, false
	if sn {
		switch {
		case p.cap.Reachable == proto.ReachUnreachable:
			want, urgent, dec.Reason = Demote, true, "unreachable: no leaf can attach"
		case d.Ask == AskStepDown:
			want, dec.Reason = Demote, "asked to step down"
		case !dec.Eligible && d.Supernodes > 1:
			want, dec.Reason = Demote, "below the stay thresholds"
		case !dec.Eligible:
			dec.Reason = "below the stay thresholds, but no other supernode is known"
		default:
			dec.Reason = "serving"
		}
	} else {
		dec.Decline = p.Declining(now)
		switch {
		case d.Ask != AskStepUp && dec.Eligible:
			dec.Reason = "eligible, not asked"
		case d.Ask != AskStepUp:
			dec.Reason = "not eligible, not asked"
		case !dec.Eligible:
			dec.Reason, dec.Decline = "asked to step up, not eligible", true
		default:
			want, dec.Reason = Promote, "asked to step up"
		}
	}

	switch {
	case want == Stay:
		p.want, p.streak = Stay, 0
	case want == p.want:
		p.streak++
	default:
		p.want, p.streak = want, 1
	}
	dec.Want, dec.Streak = want, p.streak
	switch {
	case want == Stay:
	case p.streak < p.cfg.Confidence:
		dec.Blocked = "confidence"
	case !urgent && now.Before(dec.HoldUntil):
		dec.Blocked = "hold-down"
		dec.Decline = !sn
	default:
		dec.Action = want
		if want == Promote {
			p.change(now, proto.RoleSupernode)
		} else {
			p.change(now, proto.RoleLeaf)
		}
	}
	p.record(dec)
	return dec
}

// Declining reports whether this node, a leaf, would refuse to step up if
// asked now: it has no measurement yet, a gate other than uptime fails
// (the bootstrap server may waive that one), or it is in hold-down after a
// role change. The runtime sends it with every join and heartbeat so the
// bootstrap server asks someone else instead of waiting for a refusal.
// A supernode is never declining.
func (p *Policy) Declining(now time.Time) bool {
	if p.role == proto.RoleSupernode {
		return false
	}
	if !p.measured || now.Before(p.holdUntil()) {
		return true
	}
	g := p.check(Demand{AcceptYoung: true}, false)
	return !g.all()
}

// SetRole tells the policy the node's role changed by other means: the
// runtime could not carry out a decision (the supernode role failed to
// start, a bootstrap server refused the registration), or an operator
// pinned it. It counts as a role change for the hold-down.
func (p *Policy) SetRole(now time.Time, role proto.Role, reason string) {
	if role != proto.RoleSupernode {
		role = proto.RoleLeaf
	}
	if role == p.role {
		return
	}
	dec := Decision{At: now, Role: p.role, Reason: "set: " + reason, Capacity: p.cap}
	dec.Action = Demote
	if role == proto.RoleSupernode {
		dec.Action = Promote
	}
	dec.Want = dec.Action
	p.change(now, role)
	dec.HoldUntil = p.holdUntil()
	p.record(dec)
}

// change switches the role at now and sets the hold-down: MinInterval, or
// double the last one when this change comes within twice it of the last.
func (p *Policy) change(now time.Time, role proto.Role) {
	if !p.lastChange.IsZero() && now.Sub(p.lastChange) < 2*p.hold {
		p.hold = min(2*p.hold, p.cfg.MaxBackoff)
	} else {
		p.hold = p.cfg.MinInterval
	}
	p.lastChange, p.role = now, role
	p.changes++
	p.want, p.streak = Stay, 0
}

func (p *Policy) holdUntil() time.Time {
	if p.lastChange.IsZero() {
		return time.Time{}
	}
	return p.lastChange.Add(p.hold)
}

// gate kinds, in the order decisions list them.
const (
	gateReachable = iota
	gateUpload
	gateDownload
	gateCores
	gateMemory
	gateLoad
	gateUptime
	numGates
)

var gateNames = [numGates]string{"reachable", "upload", "download", "cores", "memory", "load", "uptime"}

// gateSet is the result of every gate, numbers only: Declining needs no
// text, and a decision describes it once.
type gateSet struct {
	ok     [numGates]bool
	used   [numGates]bool
	f      float64 // the band factor applied to the thresholds
	stay   bool
	waived bool // uptime waived
}

func (g *gateSet) all() bool {
	for i, used := range g.used {
		if used && !g.ok[i] {
			return false
		}
	}
	return true
}

// check tests the measurements: the step-up thresholds, or (stay) the stay
// band below them.
func (p *Policy) check(d Demand, stay bool) gateSet {
	c, cfg := &p.cap, &p.cfg
	g := gateSet{f: 1, stay: stay}
	if stay {
		g.f = cfg.StayFraction
	}
	set := func(i int, ok bool) { g.used[i], g.ok[i] = true, ok }
	if stay {
		set(gateReachable, c.Reachable != proto.ReachUnreachable)
	} else {
		set(gateReachable, c.Reachable == proto.ReachPublic)
	}
	set(gateUpload, c.UpBps >= cfg.MinUpBps*g.f)
	set(gateDownload, c.DownBps >= cfg.MinDownBps*g.f)
	set(gateCores, c.Cores >= cfg.MinCores*g.f)
	set(gateMemory, c.MemBytes >= uint64(float64(cfg.MinMemBytes)*g.f))
	if cfg.MaxLoad1 > 0 {
		set(gateLoad, c.Load1 <= cfg.MaxLoad1/g.f)
	}
	if !stay {
		old := max(c.Uptime, c.AvgSession) >= cfg.MinUptime
		g.waived = d.AcceptYoung && !old
		set(gateUptime, old || d.AcceptYoung)
	}
	return g
}

// describe turns a gateSet into Gates with the figures, for decisions.
func (p *Policy) describe(g gateSet) []Gate {
	c, cfg := &p.cap, &p.cfg
	out := make([]Gate, 0, numGates)
	for i := range numGates {
		if !g.used[i] {
			continue
		}
		gt := Gate{Name: gateNames[i], OK: g.ok[i]}
		switch i {
		case gateReachable:
			gt.Have, gt.Want = c.Reachable.String(), "reachable"
			if g.stay {
				gt.Want = "not unreachable"
			}
		case gateUpload:
			gt.Have, gt.Want = fmtRate(c.UpBps), "≥ "+fmtRate(cfg.MinUpBps*g.f)
		case gateDownload:
			gt.Have, gt.Want = fmtRate(c.DownBps), "≥ "+fmtRate(cfg.MinDownBps*g.f)
		case gateCores:
			gt.Have, gt.Want = fmtFloat(c.Cores), "≥ "+fmtFloat(cfg.MinCores*g.f)
		case gateMemory:
			gt.Have, gt.Want = fmtBytes(float64(c.MemBytes)), "≥ "+fmtBytes(float64(cfg.MinMemBytes)*g.f)
		case gateLoad:
			gt.Have, gt.Want = fmtFloat(c.Load1)+" per CPU", "≤ "+fmtFloat(cfg.MaxLoad1/g.f)
		case gateUptime:
			gt.Have = c.Uptime.Round(time.Second).String() + " (average session " + c.AvgSession.Round(time.Second).String() + ")"
			gt.Want = "≥ " + cfg.MinUptime.String()
			if g.waived {
				gt.Want = "waived: no older candidate"
			}
		}
		out = append(out, gt)
	}
	return out
}

// record adds dec to the history, folding it into the last entry when
// nothing but the inputs changed, and logs it: role changes at Info, new
// entries at Debug.
func (p *Policy) record(dec Decision) {
	if n := len(p.hist); n > 0 {
		last := &p.hist[n-1]
		if dec.Action == Stay && last.Action == Stay && last.Role == dec.Role && last.Want == dec.Want &&
			last.Reason == dec.Reason && last.Blocked == dec.Blocked && last.Decline == dec.Decline {
			last.Decision = dec
			last.Repeats++
			return
		}
	}
	if len(p.hist) == p.cfg.HistorySize {
		copy(p.hist, p.hist[1:])
		p.hist = p.hist[:len(p.hist)-1]
	}
	p.hist = append(p.hist, DecisionRecord{Decision: dec, FirstAt: dec.At, Repeats: 1})
	switch {
	case dec.Action != Stay:
		p.log.Info("promotion: role change", zap.Stringer("action", dec.Action), zap.Stringer("from", dec.Role),
			zap.String("reason", dec.Reason), zap.Any("decision", dec))
	case p.log.Core().Enabled(zap.DebugLevel):
		p.log.Debug("promotion: decision", zap.Stringer("want", dec.Want), zap.String("reason", dec.Reason),
			zap.String("blocked", dec.Blocked), zap.Any("decision", dec))
	}
}

// Status returns the policy's state and its recent decisions.
func (p *Policy) Status() PolicyStatus {
	st := PolicyStatus{
		Role: p.role, Measured: p.measured, Capacity: p.cap,
		LastChange: p.lastChange, HoldUntil: p.holdUntil(), Hold: p.hold, Changes: p.changes,
		Decisions: make([]DecisionRecord, len(p.hist)),
	}
	if p.measured {
		st.Score = p.cfg.score(p.cap)
	}
	for i, r := range p.hist {
		r.Gates = append([]Gate(nil), r.Gates...)
		st.Decisions[i] = r
	}
	return st
}

// leafSlots is how many leaves the node's bandwidth can serve.
func (c *Config) leafSlots(up, down float64) float64 {
	return max(0, min(up/c.UpBpsPerLeaf, down/c.DownBpsPerLeaf))
}

// stability weighs a score by how long the node stays: 1 for a node just
// started, rising slowly (1 + log10(1 + age/MinUptime): 1.3 at MinUptime,
// 2 at ten times it). Session lengths have a decreasing hazard (Weibull,
// shape below 1), so a node that has stayed long is likely to stay longer.
func (c *Config) stability(age time.Duration) float64 {
	return 1 + math.Log10(1+max(0, age.Seconds())/c.MinUptime.Seconds())
}

// score is the node's Score: the leaves its bottleneck resource can serve
// (bandwidth, memory, index speed), times its stability.
func (c *Config) score(cp Capacity) float64 {
	slots := min(c.leafSlots(cp.UpBps, cp.DownBps), float64(cp.MemBytes)/c.MemBytesPerLeaf, cp.IndexOpsPerSec/c.IndexOpsPerLeaf)
	return max(0, slots) * c.stability(max(cp.Uptime, cp.AvgSession))
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', 3, 64) }

// fmtRate prints bytes per second, e.g. "12.3 KB/s".
func fmtRate(bps float64) string { return fmtBytes(bps) + "/s" }

// fmtBytes prints a byte count in decimal units, e.g. "12.3 KB".
func fmtBytes(b float64) string {
	switch {
	case b >= 1e9:
		return strconv.FormatFloat(b/1e9, 'f', 1, 64) + " GB"
	case b >= 1e6:
		return strconv.FormatFloat(b/1e6, 'f', 1, 64) + " MB"
	case b >= 1e3:
		return strconv.FormatFloat(b/1e3, 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + " B"
}
