package promotion

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/index"
	"github.com/strata-p2p/strata/internal/index/corpus"
	"github.com/strata-p2p/strata/proto"
)

// Capacity is what a node measured of itself: the inputs of its promotion
// policy. Nothing in it is taken from another node's word; Reachable is the
// result of a dial-back the bootstrap server made to the node.
type Capacity struct {
	// UpBps and DownBps are the rates achieved in recent transfers (or a
	// recent bandwidth probe), in bytes per second; an upload cap shows here.
	UpBps   float64 `json:"up_bps"`
	DownBps float64 `json:"down_bps"`
	// Cores is the CPU available to the process: the least of GOMAXPROCS,
	// the CPUs and the cgroup CPU quota.
	Cores float64 `json:"cores"`
	// IndexOpsPerSec is keyword-index lookups per second on a generated
	// corpus (the work a supernode does): one goroutine's speed, times
	// Cores when that is more than one.
	IndexOpsPerSec float64 `json:"index_ops_per_sec"`
	// MemBytes is the memory available: the least of /proc/meminfo's
	// MemAvailable and what the cgroup limits leave.
	MemBytes uint64 `json:"mem_bytes"`
	// Load1 is the 1-minute load average per host CPU (1: every CPU of the
	// machine busy).
	Load1 float64 `json:"load1_per_cpu"`
	// Uptime is the current session's length; AvgSession the mean length of
	// past sessions (History).
	Uptime     time.Duration `json:"uptime_ns"`
	AvgSession time.Duration `json:"avg_session_ns"`
	// Reachable is whether the bootstrap server could dial the node back.
	Reachable  proto.Reachability `json:"reachable"`
	MeasuredAt time.Time          `json:"measured_at"`
}

// Prober runs a short active bandwidth test, for when the node has had no
// transfers lately to measure: it returns the upload and download rates
// achieved, in bytes per second. The node implements it against a bootstrap
// server (which answers within its ProbeLimiter); its uploads must go
// through the node's upload cap, like every other upload, so the cap shows
// in the result.
type Prober func(ctx context.Context) (up, down float64, err error)

// MeasureConfig tunes a Measurer. The zero value is valid: unset fields
// take their values from DefaultMeasureConfig (nil hooks: that input is not
// measured).
type MeasureConfig struct {
	// Root is the filesystem at "/" to read /proc and /sys/fs/cgroup from;
	// nil is the system's. Tests pass fixtures (testing/fstest.MapFS).
	Root fs.FS
	// Meter is fed by the node's transfers; nil: no transfer rates.
	Meter *RateMeter
	// Probe runs a bandwidth probe; nil: none.
	Probe Prober
	// ProbeEvery is the least time between two probes; a probe runs only
	// when the meter has no rate to report.
	ProbeEvery time.Duration
	// ProbeValid is how long a probe's result counts.
	ProbeValid time.Duration
	// ProbeTimeout bounds one probe.
	ProbeTimeout time.Duration
	// History gives uptime and average session; nil: uptime since the
	// Measurer was made, no average.
	History *History
	// Reachability returns the node's reachability as last established by
	// a dial-back; nil: unknown (never eligible).
	Reachability func() proto.Reachability
	// BenchFiles is the size of the corpus the index benchmark searches.
	BenchFiles int
	// BenchBudget is how long the index benchmark searches (wall time,
	// whatever the clock: it measures the CPU).
	BenchBudget time.Duration
	// BenchEvery is how often the index benchmark runs again (the CPU
	// share a process gets can change).
	BenchEvery time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger receives warnings (a failed probe); nil discards them.
	Logger *zap.Logger
}

// DefaultMeasureConfig returns the defaults; they are stated only here.
func DefaultMeasureConfig() MeasureConfig {
	return MeasureConfig{
		ProbeEvery:   10 * time.Minute,
		ProbeValid:   30 * time.Minute,
		ProbeTimeout: 15 * time.Second,
		BenchFiles:   20_000,
		BenchBudget:  200 * time.Millisecond,
		BenchEvery:   time.Hour,
	}
}

func (c MeasureConfig) populate() MeasureConfig {
	d := DefaultMeasureConfig()
	for _, f := range []struct{ v, def *time.Duration }{{&c.ProbeEvery, &d.ProbeEvery}, {&c.ProbeValid, &d.ProbeValid},
		{&c.ProbeTimeout, &d.ProbeTimeout}, {&c.BenchBudget, &d.BenchBudget}, {&c.BenchEvery, &d.BenchEvery}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if c.BenchFiles == 0 {
		c.BenchFiles = d.BenchFiles
	}
	if c.Root == nil {
		c.Root = systemRoot()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

func (c MeasureConfig) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ProbeEvery", c.ProbeEvery}, {"ProbeValid", c.ProbeValid}, {"ProbeTimeout", c.ProbeTimeout},
		{"BenchBudget", c.BenchBudget}, {"BenchEvery", c.BenchEvery}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %v; it must be positive (or zero for the default)", d.name, d.v))
		}
	}
	if c.BenchFiles < 0 || c.BenchFiles > 1_000_000 {
		errs = append(errs, fmt.Errorf("benchmark corpus (BenchFiles=%d) must be in 1..1000000 (or zero for the default)", c.BenchFiles))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("measure config: %w", err)
	}
	return nil
}

// Measurer takes a node's Capacity. It does I/O (reads /proc and cgroup
// files, runs the index benchmark and probes), so it belongs to the node's
// runtime; the Policy only ever sees the Capacity it returns. It is safe for
// concurrent use (calls are serialised).
type Measurer struct {
	cfg     MeasureConfig
	started time.Time

	mu       sync.Mutex
	benchAt  time.Time
	benchOps float64 // one core's lookups per second
	probeAt  time.Time
	probeGot time.Time
	probeUp  float64
	probeDn  float64
}

// NewMeasurer returns a Measurer; it measures nothing until asked.
func NewMeasurer(cfg MeasureConfig) (*Measurer, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Measurer{cfg: cfg, started: cfg.Now()}, nil
}

// Measure takes a Capacity now. It may take a while: the index benchmark
// (BenchBudget, once per BenchEvery) and a probe (at most ProbeTimeout).
// It fails only when ctx ends.
func (m *Measurer) Measure(ctx context.Context) (Capacity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	c := Capacity{MeasuredAt: now}

	limits := readCgroups(m.cfg.Root)
	numCPU := runtime.NumCPU()
	c.Cores = availableCores(limits, runtime.GOMAXPROCS(0), numCPU)
	c.MemBytes = availableMem(m.cfg.Root, limits)
	if l, ok := loadAvg1(m.cfg.Root); ok {
		c.Load1 = l / float64(numCPU)
	}

	if m.benchAt.IsZero() || now.Sub(m.benchAt) >= m.cfg.BenchEvery {
		ops, err := benchIndex(ctx, m.cfg.BenchFiles, m.cfg.BenchBudget)
		if err != nil {
			return Capacity{}, err
		}
		m.benchOps, m.benchAt = ops, now
	}
	// One goroutine's wall-clock speed scales with the cores beyond the
	// first; below one core the quota already throttled the benchmark (its
	// budget spans at least two 100 ms CFS periods), so no scaling down.
	c.IndexOpsPerSec = m.benchOps * max(1, c.Cores)

	var err error
	c.UpBps, c.DownBps, err = m.rates(ctx, now)
	if err != nil {
		return Capacity{}, err
	}

	if h := m.cfg.History; h != nil {
		h.Touch(now)
		c.Uptime, c.AvgSession = h.Uptime(now), h.AvgSession()
	} else {
		c.Uptime = max(0, now.Sub(m.started))
	}
	if m.cfg.Reachability != nil {
		c.Reachable = m.cfg.Reachability()
	}
	return c, nil
}

// rates returns the upload and download rates: the higher of what the meter
// saw in transfers and a recent probe. A transfer's rate is bounded by the
// far end too, so the best recent evidence of what the link carries wins.
// The probe runs only when the meter has nothing for one of the directions.
func (m *Measurer) rates(ctx context.Context, now time.Time) (up, down float64, err error) {
	var upOK, downOK bool
	if m.cfg.Meter != nil {
		up, upOK = m.cfg.Meter.Rate(now, Upload)
		down, downOK = m.cfg.Meter.Rate(now, Download)
	}
	if (!upOK || !downOK) && m.cfg.Probe != nil && (m.probeAt.IsZero() || now.Sub(m.probeAt) >= m.cfg.ProbeEvery) {
		m.probeAt = now
		pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
		pu, pd, perr := m.cfg.Probe(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return 0, 0, ctx.Err()
		case perr != nil:
			m.cfg.Logger.Warn("bandwidth probe failed; rates come from transfers alone until the next probe", zap.Error(perr))
		default:
			m.probeUp, m.probeDn, m.probeGot = max(0, pu), max(0, pd), now
		}
	}
	if !m.probeGot.IsZero() && now.Sub(m.probeGot) < m.cfg.ProbeValid {
		up, down = max(up, m.probeUp), max(down, m.probeDn)
	}
	return up, down, nil
}

// availableCores is the least of GOMAXPROCS, the CPU count and the cgroup
// quota (which may be fractional).
func availableCores(l cgroupLimits, gomaxprocs, numCPU int) float64 {
	c := float64(min(gomaxprocs, numCPU))
	if l.CPUQuota > 0 {
		c = min(c, l.CPUQuota)
	}
	return c
}

// availableMem is the least of MemAvailable and what the cgroup limits
// leave; 0 when neither is known.
func availableMem(root fs.FS, l cgroupLimits) uint64 {
	mem, ok := memAvailable(root)
	if l.MemLimit > 0 && (!ok || l.MemAvail < mem) {
		mem = l.MemAvail
	}
	return mem
}

// benchQueries is how many distinct queries the index benchmark cycles
// through.
const benchQueries = 512

// benchIndex builds a keyword index of files generated files (1,000 per
// owner, as shared by typical leaves) and returns how many searches (100
// results at most, as a supernode answers) one goroutine runs per second
// within budget.
func benchIndex(ctx context.Context, files int, budget time.Duration) (float64, error) {
	entries := corpus.Generate(1, files)
	x := index.New()
	for i := range entries {
		x.Add(uint32(i/1000), &entries[i])
	}
	qs := make([]*index.Query, 0, benchQueries)
	for _, s := range corpus.Queries(2, benchQueries) {
		if q, err := index.ParseQuery(s); err == nil {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return 0, errors.New("index benchmark: no query parsed") // cannot happen with the fixed vocabulary
	}
	hits := 0
	visit := func(uint32, proto.FileEntry) bool { hits++; return true }
	n := 0
	start := time.Now()
	var elapsed time.Duration
	for {
		for range 32 {
			x.Search(qs[n%len(qs)], 100, visit)
			n++
		}
		elapsed = time.Since(start)
		if elapsed >= budget {
			break
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	runtime.KeepAlive(hits)
	return float64(n) / elapsed.Seconds(), nil
}
