package promotion

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// tokenBucket holds tokens that refill at a rate up to a burst. Its owner
// locks it and passes rate and burst in, so a limiter with many buckets
// stores them once.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func newTokenBucket(now time.Time, burst float64) tokenBucket {
	return tokenBucket{tokens: burst, last: now}
}

func (b *tokenBucket) refill(now time.Time, rate, burst float64) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
		b.last = now
	}
}

// fullAt reports whether the bucket will have refilled to burst at now,
// without touching it (last stays the time of its last use).
func (b *tokenBucket) fullAt(now time.Time, rate, burst float64) bool {
	return b.tokens+max(0, now.Sub(b.last).Seconds())*rate >= burst
}

// take removes n tokens if there are that many.
func (b *tokenBucket) take(now time.Time, n, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// wait is how long until n tokens are there (after a refill at now).
func (b *tokenBucket) wait(n, rate float64) time.Duration {
	if b.tokens >= n || rate <= 0 {
		return 0
	}
	return time.Duration((n - b.tokens) / rate * float64(time.Second))
}

// ProbeLimits bound what bandwidth probes may cost the server answering
// them (a bootstrap server, later a supernode). The zero value is valid:
// unset fields take their values from DefaultProbeLimits.
type ProbeLimits struct {
	// MaxProbeBytes is the most one probe moves each way; a bigger request
	// is cut to it.
	MaxProbeBytes int64
	// PeerRate and PeerBurst are each peer's token bucket, in bytes (a probe
	// costs twice its size: it goes both ways). The defaults allow two
	// probes at once, then one every quarter of an hour or so.
	PeerRate  float64
	PeerBurst int64
	// GlobalRate and GlobalBurst cap all probes together, in bytes.
	GlobalRate  float64
	GlobalBurst int64
	// MaxConcurrent caps the probes in progress at once.
	MaxConcurrent int
	// MaxPeers bounds the peers remembered; a peer whose bucket is full is
	// forgotten first (nothing is lost: a new peer starts full).
	MaxPeers int
}

// DefaultProbeLimits returns the defaults; they are stated only here.
func DefaultProbeLimits() ProbeLimits {
	return ProbeLimits{
		MaxProbeBytes: 256 << 10,
		PeerRate:      600,
		PeerBurst:     1 << 20,
		GlobalRate:    2 << 20,
		GlobalBurst:   8 << 20,
		MaxConcurrent: 8,
		MaxPeers:      10_000,
	}
}

func (c ProbeLimits) populate() ProbeLimits {
	d := DefaultProbeLimits()
	if c.MaxProbeBytes == 0 {
		c.MaxProbeBytes = d.MaxProbeBytes
	}
	if c.PeerRate == 0 {
		c.PeerRate = d.PeerRate
	}
	if c.PeerBurst == 0 {
		c.PeerBurst = d.PeerBurst
	}
	if c.GlobalRate == 0 {
		c.GlobalRate = d.GlobalRate
	}
	if c.GlobalBurst == 0 {
		c.GlobalBurst = d.GlobalBurst
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = d.MaxConcurrent
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = d.MaxPeers
	}
	return c
}

func (c ProbeLimits) validate() error {
	var errs []error
	if c.MaxProbeBytes < 0 || c.PeerBurst < 0 || c.GlobalBurst < 0 || c.MaxConcurrent < 0 || c.MaxPeers < 0 {
		errs = append(errs, errors.New("the sizes MaxProbeBytes, PeerBurst, GlobalBurst, MaxConcurrent and MaxPeers must be positive (or zero for the default)"))
	}
	if !(c.PeerRate > 0) || !(c.GlobalRate > 0) {
		errs = append(errs, fmt.Errorf("the rates (PeerRate=%v, GlobalRate=%v) must be positive (or zero for the default)", c.PeerRate, c.GlobalRate))
	}
	if c.PeerBurst < 2*c.MaxProbeBytes || c.GlobalBurst < 2*c.MaxProbeBytes {
		errs = append(errs, fmt.Errorf("the bursts (PeerBurst=%d, GlobalBurst=%d) must each hold at least one whole probe, 2×MaxProbeBytes (%d): a probe goes both ways",
			c.PeerBurst, c.GlobalBurst, 2*c.MaxProbeBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("probe limits: %w", err)
	}
	return nil
}

// ProbeLimiter decides whether a server answers a bandwidth probe, and how
// big: probes are answered only for peers the server already serves
// (attached leaves, registering supernodes, nodes in the middle of a join),
// each peer has a token bucket, and all probes share a global bucket and a
// cap on how many run at once. So a probe can never be used to make the
// server send unbounded traffic. It is safe for concurrent use.
type ProbeLimiter struct {
	cfg    ProbeLimits
	mu     sync.Mutex
	peers  map[proto.PeerID]*tokenBucket
	global tokenBucket
	active int
	init   bool
}

// NewProbeLimiter returns a limiter with every bucket full.
func NewProbeLimiter(cfg ProbeLimits) (*ProbeLimiter, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &ProbeLimiter{cfg: cfg, peers: map[proto.PeerID]*tokenBucket{}}, nil
}

// ProbeGrant is a probe the server may answer: it sends and reads at most
// Bytes, then calls Done (once; more calls do nothing).
type ProbeGrant struct {
	Bytes int64
	l     *ProbeLimiter
	once  sync.Once
}

// Done frees the grant's slot among the concurrent probes.
func (g *ProbeGrant) Done() {
	g.once.Do(func() {
		g.l.mu.Lock()
		g.l.active--
		g.l.mu.Unlock()
	})
}

// Acquire asks to answer a probe of want bytes each way (0 or more than
// Limits.MaxProbeBytes: that maximum) from peer at now. known says whether
// the caller serves peer already (attached, registering or joining); the
// limiter refuses any other. Refusals are *proto.Error with CodeRefused or
// CodeRateLimited, their messages saying when to retry.
func (l *ProbeLimiter) Acquire(now time.Time, peer proto.PeerID, known bool, want int64) (*ProbeGrant, error) {
	if !known {
		return nil, proto.Errorf(proto.CodeRefused, "bandwidth probes are answered only for attached or registering nodes; join first")
	}
	if want <= 0 || want > l.cfg.MaxProbeBytes {
		want = l.cfg.MaxProbeBytes
	}
	cost := float64(2 * want)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.init {
		l.global, l.init = newTokenBucket(now, float64(l.cfg.GlobalBurst)), true
	}
	if l.active >= l.cfg.MaxConcurrent {
		return nil, proto.Errorf(proto.CodeRateLimited, "%d bandwidth probes in progress, the server's limit; retry in a few seconds", l.active)
	}
	pb, ok := l.peers[peer]
	if !ok {
		if len(l.peers) >= l.cfg.MaxPeers {
			l.sweep(now)
		}
		if len(l.peers) >= l.cfg.MaxPeers {
			return nil, proto.Errorf(proto.CodeRateLimited, "the server is probing %d peers, its limit; retry in a minute", len(l.peers))
		}
		b := newTokenBucket(now, float64(l.cfg.PeerBurst))
		pb = &b
		l.peers[peer] = pb
	}
	peerRate, peerBurst := l.cfg.PeerRate, float64(l.cfg.PeerBurst)
	globalRate, globalBurst := l.cfg.GlobalRate, float64(l.cfg.GlobalBurst)
	if !pb.take(now, cost, peerRate, peerBurst) {
		return nil, proto.Errorf(proto.CodeRateLimited, "bandwidth probe too soon after the last; retry in %v", pb.wait(cost, peerRate).Round(time.Second))
	}
	if !l.global.take(now, cost, globalRate, globalBurst) {
		pb.tokens += cost // not this peer's fault
		return nil, proto.Errorf(proto.CodeRateLimited, "the server's probe budget is spent; retry in %v", l.global.wait(cost, globalRate).Round(time.Second))
	}
	l.active++
	return &ProbeGrant{Bytes: want, l: l}, nil
}

// sweep forgets the peers whose buckets have refilled.
func (l *ProbeLimiter) sweep(now time.Time) {
	for id, b := range l.peers {
		if b.fullAt(now, l.cfg.PeerRate, float64(l.cfg.PeerBurst)) {
			delete(l.peers, id)
		}
	}
}

// RequestLimits bound how often one address may ask for something that can
// lead to a promotion (a join in auto role, a dial-back, a probe). The zero
// value is valid: unset fields take their values from
// DefaultRequestLimits.
type RequestLimits struct {
	// Rate and Burst are each address's token bucket: requests per second,
	// and how many may come at once.
	Rate  float64
	Burst int
	// MaxAddrs bounds the addresses remembered. When full, addresses whose
	// buckets have refilled are forgotten first, then the least recently
	// seen.
	MaxAddrs int
	// IPv6Prefix groups IPv6 addresses by this prefix length: one host
	// usually holds a whole /64.
	IPv6Prefix int
}

// DefaultRequestLimits returns the defaults; they are stated only here.
func DefaultRequestLimits() RequestLimits {
	return RequestLimits{Rate: 0.2, Burst: 5, MaxAddrs: 10_000, IPv6Prefix: 64}
}

func (c RequestLimits) populate() RequestLimits {
	d := DefaultRequestLimits()
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.Burst == 0 {
		c.Burst = d.Burst
	}
	if c.MaxAddrs == 0 {
		c.MaxAddrs = d.MaxAddrs
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = d.IPv6Prefix
	}
	return c
}

func (c RequestLimits) validate() error {
	var errs []error
	if !(c.Rate > 0) {
		errs = append(errs, fmt.Errorf("rate (Rate=%v) must be positive (or zero for the default)", c.Rate))
	}
	if c.Burst < 0 || c.MaxAddrs < 0 {
		errs = append(errs, fmt.Errorf("burst (Burst=%d) and address cap (MaxAddrs=%d) must be positive (or zero for the default)", c.Burst, c.MaxAddrs))
	}
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("IPv6 grouping (IPv6Prefix=%d) must be in 1..128 (or zero for the default)", c.IPv6Prefix))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("request limits: %w", err)
	}
	return nil
}

// RequestLimiter limits promotion-related requests per source address. It is
// safe for concurrent use.
type RequestLimiter struct {
	cfg   RequestLimits
	mu    sync.Mutex
	addrs map[netip.Prefix]*tokenBucket
}

// NewRequestLimiter returns an empty limiter.
func NewRequestLimiter(cfg RequestLimits) (*RequestLimiter, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &RequestLimiter{cfg: cfg, addrs: map[netip.Prefix]*tokenBucket{}}, nil
}

// Allow reports whether a request from addr ("host:port" or a bare IP) at
// now may go ahead, and counts it if so. Addresses that do not parse all
// share one bucket.
func (l *RequestLimiter) Allow(now time.Time, addr string) bool {
	key := l.key(addr)
	rate, burst := l.cfg.Rate, float64(l.cfg.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.addrs[key]
	if !ok {
		if len(l.addrs) >= l.cfg.MaxAddrs {
			l.evict(now)
		}
		nb := newTokenBucket(now, burst)
		b = &nb
		l.addrs[key] = b
	}
	return b.take(now, 1, rate, burst)
}

// key groups addr: an IPv4 address alone, an IPv6 address by its prefix.
func (l *RequestLimiter) key(addr string) netip.Prefix {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(addr); err == nil {
		ip = a
	} else {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = l.cfg.IPv6Prefix
	}
	p, _ := ip.Prefix(bits)
	return p
}

// evict makes room: it forgets the addresses whose buckets have refilled,
// or else the one seen least recently.
func (l *RequestLimiter) evict(now time.Time) {
	rate, burst := l.cfg.Rate, float64(l.cfg.Burst)
	var oldest netip.Prefix
	var oldestAt time.Time
	first := true
	for k, b := range l.addrs {
		if b.fullAt(now, rate, burst) {
			delete(l.addrs, k)
			continue
		}
		if first || b.last.Before(oldestAt) {
			oldest, oldestAt, first = k, b.last, false
		}
	}
	if len(l.addrs) >= l.cfg.MaxAddrs {
		delete(l.addrs, oldest)
	}
}
