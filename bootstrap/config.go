package bootstrap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/promotion"
	"github.com/strata-p2p/strata/proto"
)

// Config tunes the registry and the server. The zero value is valid: every
// unset (zero) field takes its value from DefaultConfig, the one place the
// defaults are stated. Negative or inconsistent values are refused by New
// and NewRegistry with an error that names the field.
type Config struct {
	// Heartbeat is how often registered supernodes are told to send Register
	// again (RegisterReply.HeartbeatMillis). The server's expiry ticker runs
	// at this interval too.
	Heartbeat time.Duration
	// Expiry drops a supernode that has not registered for this long. It must
	// be longer than Heartbeat; 3.5 heartbeats forgives two lost ones.
	Expiry time.Duration
	// MeshPeers is how many other supernodes a RegisterReply (and the
	// JoinReply of a node told to become a supernode) lists for the
	// supernode mesh. At most proto.MaxPeers.
	MeshPeers int
	// JoinReplySize is how many supernodes a JoinReply lists for a leaf.
	// At most proto.MaxPeers.
	JoinReplySize int
	// AttachHold is how long a supernode handed out first in a JoinReply
	// counts one "pending attach" against its free slots, so that a burst of
	// joins between two of its heartbeats spreads over several supernodes.
	AttachHold time.Duration
	// MaxSupernodes caps the registry; registrations of new supernodes beyond
	// it are refused with proto.CodeFull.
	MaxSupernodes int

	// MaxConns caps the connections the server serves at once; more are
	// closed at once with proto.CodeFull.
	MaxConns int
	// MaxRequestsPerConn caps the requests one connection may have in
	// progress; more are refused with proto.CodeRateLimited.
	MaxRequestsPerConn int
	// WriteTimeout bounds writing one reply, so a client that does not read
	// holds a request slot for at most this long.
	WriteTimeout time.Duration
	// Agent is sent in the server's hello, e.g. "strata/0.1.0".
	Agent string

	// Promotion tunes the promotion planner: the target leaves per
	// supernode, the headroom, the hold-down between a node's role changes.
	// Its zero value is promotion.DefaultConfig.
	Promotion promotion.Config
	// Probes bounds the bandwidth probes the server answers; Requests the
	// promotion requests (a new node's first check-in, a probe) per source
	// address. Zero values are promotion's defaults.
	Probes   promotion.ProbeLimits
	Requests promotion.RequestLimits
	// CheckIn is how often nodes are told to check in for promotion
	// (CheckInReply.CheckInMillis); a node silent for 10 of them no longer
	// counts, and after 30 it is forgotten.
	CheckIn time.Duration
	// DialBack is the transport the server dials nodes back from, to learn
	// whether they are reachable. It should be another socket than the one
	// nodes talk to: a stateful firewall lets the answers to a node's own
	// packets through, which proves nothing. Nil: the served transport.
	DialBack transport.Transport
	// DialBackTimeout bounds one dial-back; DialBackEvery is how often a
	// node's reachability is checked again.
	DialBackTimeout time.Duration
	DialBackEvery   time.Duration
	// MaxNodes caps the nodes tracked for promotion; a new node's check-in
	// beyond it is refused with proto.CodeFull.
	MaxNodes int

	// Rand supplies the registry's randomness (mesh samples, tie-breaks).
	// Tests and the simulator pass a seeded one so that runs repeat; nil
	// seeds a fresh one. It is used only under the registry owner's lock.
	Rand *rand.Rand
	// Logger receives the server's logs; nil discards them.
	Logger *zap.Logger
	// Now is the server's clock; nil is time.Now. Tests pass a fake clock.
	Now func() time.Time
}

// DefaultConfig returns the defaults; they are stated only here.
func DefaultConfig() Config {
	return Config{
		Heartbeat:          1 * time.Second,
		Expiry:             3500 * time.Millisecond,
		MeshPeers:          8,
		JoinReplySize:      5,
		AttachHold:         2 * time.Second,
		MaxSupernodes:      10_000,
		MaxConns:           20_000,
		MaxRequestsPerConn: 4,
		WriteTimeout:       5 * time.Second,
		Agent:              "strata",
		CheckIn:            10 * time.Second,
		DialBackTimeout:    3 * time.Second,
		DialBackEvery:      10 * time.Minute,
		MaxNodes:           100_000,
	}
}

// populate fills unset fields from DefaultConfig.
func (c Config) populate() Config {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.Heartbeat, d.Heartbeat)
	setDur(&c.Expiry, d.Expiry)
	setDur(&c.AttachHold, d.AttachHold)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.CheckIn, d.CheckIn)
	setDur(&c.DialBackTimeout, d.DialBackTimeout)
	setDur(&c.DialBackEvery, d.DialBackEvery)
	setInt(&c.MaxNodes, d.MaxNodes)
	c.Promotion = c.Promotion.WithDefaults()
	setInt(&c.MeshPeers, d.MeshPeers)
	setInt(&c.JoinReplySize, d.JoinReplySize)
	setInt(&c.MaxSupernodes, d.MaxSupernodes)
	setInt(&c.MaxConns, d.MaxConns)
	setInt(&c.MaxRequestsPerConn, d.MaxRequestsPerConn)
	if c.Agent == "" {
		c.Agent = d.Agent
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate checks a populated Config.
func (c Config) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Heartbeat", c.Heartbeat}, {"Expiry", c.Expiry}, {"AttachHold", c.AttachHold},
		{"WriteTimeout", c.WriteTimeout}, {"CheckIn", c.CheckIn},
		{"DialBackTimeout", c.DialBackTimeout}, {"DialBackEvery", c.DialBackEvery}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %v; it must be positive (or zero for the default)", d.name, d.v))
		}
	}
	if c.Heartbeat > 0 && c.Expiry > 0 && c.Expiry <= c.Heartbeat {
		errs = append(errs, fmt.Errorf("expiry (Expiry=%v) must be longer than the heartbeat (Heartbeat=%v), or every supernode expires between two heartbeats", c.Expiry, c.Heartbeat))
	}
	if c.CheckIn/time.Millisecond > 1<<32-1 {
		errs = append(errs, fmt.Errorf("check-in interval (CheckIn=%v) does not fit the wire's 32-bit milliseconds", c.CheckIn))
	}
	if c.Expiry > 0 && c.Expiry/time.Millisecond > 1<<32-1 {
		errs = append(errs, fmt.Errorf("expiry (Expiry=%v) does not fit the wire's 32-bit milliseconds", c.Expiry))
	}
	for _, n := range []struct {
		name   string
		v, max int
	}{{"MeshPeers", c.MeshPeers, proto.MaxPeers}, {"JoinReplySize", c.JoinReplySize, proto.MaxPeers},
		{"MaxSupernodes", c.MaxSupernodes, 0}, {"MaxConns", c.MaxConns, 0}, {"MaxRequestsPerConn", c.MaxRequestsPerConn, 0},
		{"MaxNodes", c.MaxNodes, 0}} {
		switch {
		case n.v < 0:
			errs = append(errs, fmt.Errorf("%s is %d; it must be positive (or zero for the default)", n.name, n.v))
		case n.max > 0 && n.v > n.max:
			errs = append(errs, fmt.Errorf("%s is %d; the protocol allows at most %d peers in a list", n.name, n.v, n.max))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bootstrap config: %w", err)
	}
	return nil
}
