package promotion

import (
	"math"
	"testing"
	"time"
)

// cappedFlow sends chunk-sized writes through a token bucket of rate bytes
// per second with a burst of burst bytes, as the node's uploader does, for
// d, and feeds the meter. It returns the end time.
func cappedFlow(m *RateMeter, start time.Time, d time.Duration, rate, burst float64, chunk int64, dir Direction) time.Time {
	tokens, now := burst, start
	for now.Before(start.Add(d)) {
		if tokens < float64(chunk) {
			wait := time.Duration((float64(chunk) - tokens) / rate * float64(time.Second))
			now = now.Add(wait)
			tokens += wait.Seconds() * rate
		}
		tokens -= float64(chunk)
		m.Observe(now, chunk, dir)
	}
	return now
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// TestRateMeterCapped: a flow capped at 20 KB/s measures about 20 KB/s,
// whether it writes small chunks or big bursts with pauses between.
func TestRateMeterCapped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int64
		burst float64
	}{{"16KiB chunks", 16 << 10, 64 << 10}, {"64KiB chunks", 64 << 10, 64 << 10}, {"1KiB chunks", 1 << 10, 4 << 10}} {
		m := testMeter(t)
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		end := cappedFlow(m, start, time.Minute, 20_000, tc.burst, tc.chunk, Upload)
		got, ok := m.Rate(end, Upload)
		if !ok || !within(got, 20_000, 0.1) {
			t.Errorf("%s: rate = %.0f B/s (ok %v), want 20,000 ± 10%%", tc.name, got, ok)
		}
		if _, ok := m.Rate(end, Download); ok {
			t.Errorf("%s: a download rate without downloads", tc.name)
		}
	}
}

// TestRateMeterBusyRate: two 5-second transfers at 1 MB/s, 15 s apart,
// measure 1 MB/s, not the window's average.
func TestRateMeterBusyRate(t *testing.T) {
	m := testMeter(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, off := range []time.Duration{0, 20 * time.Second} {
		for i := range 50 {
			m.Observe(t0.Add(off+time.Duration(i)*100*time.Millisecond), 100_000, Download)
		}
	}
	got, ok := m.Rate(t0.Add(26*time.Second), Download)
	if !ok || !within(got, 1_000_000, 0.05) {
		t.Fatalf("rate = %.0f (ok %v), want 1 MB/s", got, ok)
	}
}

func TestRateMeterWindow(t *testing.T) {
	m := testMeter(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Too little traffic: one second of it is not a measurement.
	m.Observe(t0, 1_000_000, Upload)
	if _, ok := m.Rate(t0.Add(2*time.Second), Upload); ok {
		t.Error("one busy second counted as a measurement")
	}
	// Ten seconds at 50 KB/s, then the window passes: nothing left.
	for i := range 10 {
		m.Observe(t0.Add(time.Duration(i)*time.Second), 50_000, Upload)
	}
	// The first second (with the 1 MB burst) starts the clock.
	if got, ok := m.Rate(t0.Add(11*time.Second), Upload); !ok || !within(got, 50_000, 0.01) {
		t.Errorf("rate = %.0f (ok %v), want 50 KB/s", got, ok)
	}
	if _, ok := m.Rate(t0.Add(45*time.Second), Upload); ok {
		t.Error("a rate from traffic older than the window")
	}
	// An observation older than the window, behind the newest, is dropped
	// and does not overwrite a newer bucket.
	m.Observe(t0.Add(50*time.Second), 10, Upload)
	m.Observe(t0.Add(10*time.Second), 1_000_000_000, Upload)
	if got, _ := m.Rate(t0.Add(52*time.Second), Upload); got > 100 {
		t.Errorf("stale observation counted: %v", got)
	}
	// The bucket in progress does not count until it is complete.
	m2 := testMeter(t)
	for i := range 5 {
		m2.Observe(t0.Add(time.Duration(i)*time.Second), 10_000, Upload)
	}
	m2.Observe(t0.Add(5*time.Second+time.Millisecond), 10_000_000, Upload)
	if got, ok := m2.Rate(t0.Add(5*time.Second+2*time.Millisecond), Upload); !ok || !within(got, 10_000, 0.01) {
		t.Errorf("rate = %.0f (ok %v), want 10 KB/s without the partial bucket", got, ok)
	}
}

func TestRateMeterConfig(t *testing.T) {
	for _, c := range []RateMeterConfig{
		{Window: 10 * time.Second, Bucket: 3 * time.Second},
		{Bucket: time.Microsecond},
		{MinBusy: time.Hour},
		{IdleGap: -time.Second},
	} {
		if _, err := NewRateMeter(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
