package promotion

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/proto"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }
func testMeter(t *testing.T) *RateMeter {
	m, err := NewRateMeter(RateMeterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fixtureRoot is a machine with 2 GB available and a cgroup v2 quota of
// 1.5 cores and 1 GiB of memory, 256 MiB of it in use.
func fixtureRoot() fstest.MapFS {
	return fstest.MapFS{
		"proc/self/cgroup":             file("0::/\n"),
		"proc/self/mountinfo":          file(v2Mount),
		"proc/meminfo":                 file("MemAvailable:    2000000 kB\n"),
		"proc/loadavg":                 file("0.40 0.30 0.20 1/100 42\n"),
		"sys/fs/cgroup/cpu.max":        file("150000 100000\n"),
		"sys/fs/cgroup/memory.max":     file("1073741824\n"),
		"sys/fs/cgroup/memory.current": file("268435456\n"),
	}
}

func TestMeasure(t *testing.T) {
	clk := newClock()
	meter := testMeter(t)
	probes := 0
	probe := func(context.Context) (float64, float64, error) { probes++; return 50_000, 400_000, nil }
	hist := LoadHistory("", clk.Now(), nil)
	m, err := NewMeasurer(MeasureConfig{
		Root: fixtureRoot(), Meter: meter, Probe: probe, History: hist,
		Reachability: func() proto.Reachability { return proto.ReachPublic },
		BenchFiles:   2000, BenchBudget: 20 * time.Millisecond,
		Now: clk.Now, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Minute)
	c, err := m.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantCores := min(1.5, float64(min(runtime.GOMAXPROCS(0), runtime.NumCPU())))
	if c.Cores != wantCores {
		t.Errorf("cores = %v, want %v", c.Cores, wantCores)
	}
	if c.MemBytes != 768<<20 {
		t.Errorf("memory = %d, want 768 MiB (the cgroup's room, under MemAvailable)", c.MemBytes)
	}
	if want := 0.4 / float64(runtime.NumCPU()); c.Load1 != want {
		t.Errorf("load per CPU = %v, want %v", c.Load1, want)
	}
	if c.IndexOpsPerSec <= 0 {
		t.Errorf("index ops = %v", c.IndexOpsPerSec)
	}
	if probes != 1 || c.UpBps != 50_000 || c.DownBps != 400_000 {
		t.Errorf("no traffic: probes %d, rates %v/%v; want one probe's 50k/400k", probes, c.UpBps, c.DownBps)
	}
	if c.Uptime != 10*time.Minute || c.Reachable != proto.ReachPublic || !c.MeasuredAt.Equal(clk.Now()) {
		t.Errorf("uptime %v reachable %v at %v", c.Uptime, c.Reachable, c.MeasuredAt)
	}

	// A minute later: still no traffic, but the probe is recent: no new
	// probe, its result still counts.
	clk.Add(time.Minute)
	if c, _ = m.Measure(context.Background()); probes != 1 || c.UpBps != 50_000 {
		t.Errorf("probes %d, up %v; want the earlier probe reused", probes, c.UpBps)
	}

	// Real transfers faster than the probe: the meter wins; it has both
	// directions, so no probe runs even after ProbeEvery.
	clk.Add(20 * time.Minute)
	for i := range 20 {
		at := clk.Now().Add(time.Duration(i-20) * time.Second)
		meter.Observe(at, 200_000, Upload)
		meter.Observe(at, 1_000_000, Download)
	}
	c, _ = m.Measure(context.Background())
	if probes != 1 || c.UpBps < 190_000 || c.DownBps < 950_000 {
		t.Errorf("probes %d, rates %v/%v; want the meter's 200k/1M and no probe", probes, c.UpBps, c.DownBps)
	}

	// Past ProbeValid with no traffic: a new probe; a failing one leaves
	// the rates unmeasured (zero), not stale.
	clk.Add(time.Hour)
	m.cfg.Probe = func(context.Context) (float64, float64, error) {
		probes++
		return 0, 0, errors.New("bootstrap unreachable")
	}
	c, _ = m.Measure(context.Background())
	if probes != 2 || c.UpBps != 0 {
		t.Errorf("probes %d, up %v; want a failed probe and no rate", probes, c.UpBps)
	}
}

func TestMeasureCancelled(t *testing.T) {
	m, err := NewMeasurer(MeasureConfig{Root: fstest.MapFS{}, BenchFiles: 500, BenchBudget: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Measure(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the benchmark to stop on a cancelled context", err)
	}
}

func TestMeasureConfigValidate(t *testing.T) {
	if _, err := NewMeasurer(MeasureConfig{BenchFiles: -1}); err == nil {
		t.Error("negative BenchFiles accepted")
	}
	if _, err := NewMeasurer(MeasureConfig{ProbeEvery: -time.Second}); err == nil {
		t.Error("negative ProbeEvery accepted")
	}
}

// TestMeasureThisMachine reads the real /proc and cgroups: whatever the
// machine, a Linux process has at least some cores and memory.
func TestMeasureThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	m, err := NewMeasurer(MeasureConfig{BenchFiles: 1000, BenchBudget: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Cores <= 0 || c.MemBytes == 0 || c.IndexOpsPerSec <= 0 {
		t.Fatalf("capacity = %+v", c)
	}
	t.Logf("this machine: %.2f cores, %s available, %.0f index lookups/s, load %.2f per CPU",
		c.Cores, fmtBytes(float64(c.MemBytes)), c.IndexOpsPerSec, c.Load1)
}
