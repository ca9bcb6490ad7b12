package promotion

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"
)

// Config tunes the promotion policy (Policy, on a node) and the demand
// planner (Planner, on a bootstrap server). Both read the same thresholds,
// so a node and the bootstrap server agree on what a good supernode is and
// on how fast roles may change.
//
// The zero value is valid: every unset (zero) field takes its value from
// DefaultConfig, the one place the defaults are stated. Fields where zero is
// a meaningful setting say how to ask for it (a negative value). NewPolicy
// and NewPlanner refuse inconsistent values with an error naming the field.
type Config struct {
	// Eligibility: the least a node must measure of itself to step up. The
	// upload and download rates are LimeWire's ultrapeer figures.

	// MinUpBps and MinDownBps are the least measured upload and download
	// rates, in bytes per second.
	MinUpBps, MinDownBps float64
	// MinCores is the least CPU available to the process, in cores
	// (GOMAXPROCS and cgroup quotas included).
	MinCores float64
	// MinMemBytes is the least memory available to the process (cgroup
	// limits included).
	MinMemBytes uint64
	// MaxLoad1 is the highest 1-minute load average per host CPU
	// (Capacity.Load1) at which a node still steps up: a machine busy with
	// other work makes a poor supernode. Negative: no load gate.
	MaxLoad1 float64
	// MinUptime is the uptime, or average session length over past
	// sessions, a node needs to step up (LimeWire and gtk-gnutella: 1 h).
	// The bootstrap server waives it (Demand.AcceptYoung) when it has no
	// candidate that old, as in a network that has just started.
	MinUptime time.Duration
	// StayFraction makes the gates a band rather than a line: a supernode
	// stays one until its measurements fall below StayFraction of the
	// thresholds it needed to step up (and its load rises above
	// MaxLoad1/StayFraction), so noise around a threshold does not flip it.
	// In (0, 1]; 1 is no band.
	StayFraction float64

	// Score: how many leaves a node could serve (its bottleneck resource
	// divided by what one leaf costs), weighted by its stability. See
	// Policy and Planner for who computes it from what.

	// UpBpsPerLeaf and DownBpsPerLeaf are the upload and download a leaf
	// costs its supernode: query hits out, queries and share lists in.
	UpBpsPerLeaf, DownBpsPerLeaf float64
	// MemBytesPerLeaf is the memory a leaf costs: its index entries (about
	// 300 KB per 1,000 files) and its connection.
	MemBytesPerLeaf float64
	// IndexOpsPerLeaf is the index lookups per second a leaf costs: its own
	// searches and its share of the queries flooded across the mesh.
	IndexOpsPerLeaf float64

	// Hysteresis.

	// MinInterval is the least time between two role changes of a node
	// (gtk-gnutella: 30 min), and on the bootstrap server the least time
	// between asking a node to change role one way and asking it the other.
	MinInterval time.Duration
	// MaxBackoff caps the hold-down after a role change. A node whose role
	// changes again within twice its hold-down doubles it, up to MaxBackoff
	// (gtk-gnutella: about 17 h); a change after a quiet spell resets it to
	// MinInterval.
	MaxBackoff time.Duration
	// Confidence is how many consecutive decisions must want the same role
	// change before the node acts on it.
	Confidence int
	// Smoothing is the weight of a new measurement in the moving average of
	// the rates, cores, memory and index speed, in (0, 1]; 1 is no smoothing.
	Smoothing float64
	// HistorySize is how many decisions a Policy keeps for status
	// (identical consecutive decisions share an entry).
	HistorySize int

	// Demand (Planner).

	// LeavesPerSupernode is the target ratio (KaZaA ran about 100,
	// Gnutella ultrapeers 30 to 300).
	LeavesPerSupernode float64
	// Headroom is the spare capacity kept on top of the target ratio: the
	// network wants ceil(leaves × (1+Headroom) / LeavesPerSupernode)
	// supernodes, and asks supernodes to step down only when it has more
	// than ceil(leaves × (1+2×Headroom) / LeavesPerSupernode). Negative: no
	// headroom (and the two counts coincide: expect flapping at the edge).
	Headroom float64
	// MinSupernodes is the fewest supernodes the planner keeps; at least 1.
	MinSupernodes int
	// IdleAfter makes a supernode with no leaves for this long idle: idle
	// supernodes are the first asked to step down (gtk-gnutella: 1 h).
	IdleAfter time.Duration
	// AskTimeout is how long a candidate may stay asked to step up without
	// registering as a supernode; past it, it counts as having declined.
	AskTimeout time.Duration
	// DeclineHold is how long the planner leaves a candidate alone after it
	// declined (or timed out).
	DeclineHold time.Duration
	// Stickiness keeps the planner asking the nodes it already asked: a
	// standing ask counts the node's score as (1+Stickiness) times higher
	// (lower for step-downs), so measurement noise does not move asks from
	// node to node and reset their confidence. Negative: none.
	Stickiness float64
	// SwapFactor lets a much stronger candidate in while the supernode
	// count is within the band: when the best candidate's score is more
	// than SwapFactor times the weakest supernode's (one that could be
	// asked to step down), the candidate is asked to step up; once it
	// serves, the supernodes are more than needed and the weakest is asked
	// down. So an early, weak supernode (the first measured in a network
	// just started) does not stay in place of a strong one for good. A
	// young candidate (seen for less than MinUptime) replaces only a young
	// supernode. Negative: never.
	SwapFactor float64
	// MaxTracked bounds the nodes a Planner remembers (it forgets those
	// gone longest first).
	MaxTracked int

	// Logger receives decisions (Info for role changes, Debug otherwise);
	// nil discards them.
	Logger *zap.Logger
}

// DefaultConfig returns the defaults; they are stated only here.
func DefaultConfig() Config {
	return Config{
		MinUpBps:     10_000,
		MinDownBps:   20_000,
		MinCores:     1,
		MinMemBytes:  128 << 20,
		MaxLoad1:     2,
		MinUptime:    time.Hour,
		StayFraction: 0.7,

		UpBpsPerLeaf:    1_000,
		DownBpsPerLeaf:  500,
		MemBytesPerLeaf: 1 << 20,
		IndexOpsPerLeaf: 20,

		MinInterval: 30 * time.Minute,
		MaxBackoff:  17 * time.Hour,
		Confidence:  2,
		Smoothing:   0.5,
		HistorySize: 50,

		LeavesPerSupernode: 30,
		Headroom:           0.25,
		MinSupernodes:      1,
		IdleAfter:          time.Hour,
		AskTimeout:         5 * time.Minute,
		DeclineHold:        10 * time.Minute,
		Stickiness:         0.2,
		SwapFactor:         3,
		MaxTracked:         100_000,
	}
}

// WithDefaults returns c with every unset field taken from DefaultConfig,
// as NewPolicy and NewPlanner see it (for status and logs).
func (c Config) WithDefaults() Config { return c.populate() }

// populate fills unset fields from DefaultConfig and turns the "negative
// means none" settings into zero.
func (c Config) populate() Config {
	d := DefaultConfig()
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setF(&c.MinUpBps, d.MinUpBps)
	setF(&c.MinDownBps, d.MinDownBps)
	setF(&c.MinCores, d.MinCores)
	if c.MinMemBytes == 0 {
		c.MinMemBytes = d.MinMemBytes
	}
	setF(&c.MaxLoad1, d.MaxLoad1)
	setD(&c.MinUptime, d.MinUptime)
	setF(&c.StayFraction, d.StayFraction)
	setF(&c.UpBpsPerLeaf, d.UpBpsPerLeaf)
	setF(&c.DownBpsPerLeaf, d.DownBpsPerLeaf)
	setF(&c.MemBytesPerLeaf, d.MemBytesPerLeaf)
	setF(&c.IndexOpsPerLeaf, d.IndexOpsPerLeaf)
	setD(&c.MinInterval, d.MinInterval)
	setD(&c.MaxBackoff, d.MaxBackoff)
	setI(&c.Confidence, d.Confidence)
	setF(&c.Smoothing, d.Smoothing)
	setI(&c.HistorySize, d.HistorySize)
	setF(&c.LeavesPerSupernode, d.LeavesPerSupernode)
	setF(&c.Headroom, d.Headroom)
	setI(&c.MinSupernodes, d.MinSupernodes)
	setD(&c.IdleAfter, d.IdleAfter)
	setD(&c.AskTimeout, d.AskTimeout)
	setD(&c.DeclineHold, d.DeclineHold)
	setF(&c.Stickiness, d.Stickiness)
	setF(&c.SwapFactor, d.SwapFactor)
	setI(&c.MaxTracked, d.MaxTracked)
	for _, v := range []*float64{&c.MaxLoad1, &c.Headroom, &c.Stickiness, &c.SwapFactor} {
		if *v < 0 {
			*v = 0
		}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// validate checks a populated Config.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"MinUpBps", c.MinUpBps}, {"MinDownBps", c.MinDownBps}, {"MinCores", c.MinCores},
		{"UpBpsPerLeaf", c.UpBpsPerLeaf}, {"DownBpsPerLeaf", c.DownBpsPerLeaf},
		{"MemBytesPerLeaf", c.MemBytesPerLeaf}, {"IndexOpsPerLeaf", c.IndexOpsPerLeaf},
		{"LeavesPerSupernode", c.LeavesPerSupernode}} {
		if !(f.v > 0) { // also catches NaN
			errs = append(errs, fmt.Errorf("%s is %v; it must be positive (or zero for the default)", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"StayFraction", c.StayFraction}, {"Smoothing", c.Smoothing}} {
		if !(f.v > 0 && f.v <= 1) {
			errs = append(errs, fmt.Errorf("%s is %v; it must be in (0, 1]", f.name, f.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MinUptime", c.MinUptime}, {"MinInterval", c.MinInterval}, {"MaxBackoff", c.MaxBackoff},
		{"IdleAfter", c.IdleAfter}, {"AskTimeout", c.AskTimeout}, {"DeclineHold", c.DeclineHold}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %v; it must be positive (or zero for the default)", d.name, d.v))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"MaxLoad1", c.MaxLoad1}, {"Headroom", c.Headroom}, {"Stickiness", c.Stickiness}, {"SwapFactor", c.SwapFactor}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s is %v; it must be a finite number", f.name, f.v))
		}
	}
	if c.MaxBackoff < c.MinInterval {
		errs = append(errs, fmt.Errorf("the longest hold-down (MaxBackoff=%v) is shorter than the shortest (MinInterval=%v); the hold-down can only grow from MinInterval", c.MaxBackoff, c.MinInterval))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"Confidence", c.Confidence}, {"HistorySize", c.HistorySize}, {"MinSupernodes", c.MinSupernodes}, {"MaxTracked", c.MaxTracked}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d; it must be positive (or zero for the default)", n.name, n.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("promotion config: %w", err)
	}
	return nil
}
