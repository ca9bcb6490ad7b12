package promotion

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Direction is which way bytes went, as seen from this node.
type Direction uint8

const (
	Upload   Direction = 0 // sent by this node
	Download Direction = 1 // received by this node
)

func (d Direction) String() string {
	if d == Upload {
		return "upload"
	}
	return "download"
}

// RateMeterConfig tunes a RateMeter. The zero value is valid: unset fields
// take their values from DefaultRateMeterConfig.
type RateMeterConfig struct {
	// Window is how far back the meter looks.
	Window time.Duration
	// Bucket is the meter's resolution; Window is a whole number of them.
	Bucket time.Duration
	// IdleGap: silences up to this long between two bursts of one flow count
	// as busy time. A rate-capped sender writes in bursts (a token bucket
	// lets a chunk go, then waits); without the bridge the meter would see
	// only the bursts and report the rate within them.
	IdleGap time.Duration
	// MinBusy is the least busy time in the window for a rate to count as
	// measured; below it Rate reports nothing and the node probes instead.
	MinBusy time.Duration
}

// DefaultRateMeterConfig returns the defaults; they are stated only here.
func DefaultRateMeterConfig() RateMeterConfig {
	return RateMeterConfig{Window: 30 * time.Second, Bucket: time.Second, IdleGap: 5 * time.Second, MinBusy: 3 * time.Second}
}

func (c RateMeterConfig) populate() RateMeterConfig {
	d := DefaultRateMeterConfig()
	for _, f := range []struct{ v, def *time.Duration }{{&c.Window, &d.Window}, {&c.Bucket, &d.Bucket}, {&c.IdleGap, &d.IdleGap}, {&c.MinBusy, &d.MinBusy}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return c
}

func (c RateMeterConfig) validate() error {
	var errs []error
	if c.Bucket < time.Millisecond {
		errs = append(errs, fmt.Errorf("resolution (Bucket=%v) must be at least 1ms", c.Bucket))
	}
	if c.Window < c.Bucket || c.Bucket > 0 && c.Window%c.Bucket != 0 {
		errs = append(errs, fmt.Errorf("window (Window=%v) must be a whole number of buckets (Bucket=%v)", c.Window, c.Bucket))
	} else if c.Bucket > 0 && c.Window/c.Bucket > 1<<16 {
		errs = append(errs, fmt.Errorf("window (Window=%v) holds more than 65536 buckets (Bucket=%v); use a coarser bucket", c.Window, c.Bucket))
	}
	if c.IdleGap < 0 || c.MinBusy < 0 {
		errs = append(errs, fmt.Errorf("idle gap (IdleGap=%v) and least busy time (MinBusy=%v) must not be negative", c.IdleGap, c.MinBusy))
	}
	if c.MinBusy > c.Window {
		errs = append(errs, fmt.Errorf("least busy time (MinBusy=%v) is longer than the window (Window=%v); no rate would ever count", c.MinBusy, c.Window))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rate meter config: %w", err)
	}
	return nil
}

// RateMeter measures the upload and download rates a node achieves in real
// transfers, over a sliding window. It reports the rate while busy (bytes
// over the time the link was in use, with short silences bridged; the
// first bucket of each busy run only starts the clock), not the average
// over the whole window: a node that uploaded at 2 MB/s for 5 s and
// then idled measures 2 MB/s. A node whose uploads are capped measures its
// cap, since that is all it sends.
//
// It is safe for concurrent use: transfers on many goroutines feed it.
type RateMeter struct {
	cfg    RateMeterConfig
	mu     sync.Mutex
	series [2]meterSeries
}

// meterSeries is a ring of buckets; idx holds each slot's bucket number so
// stale slots are told from current ones without clearing.
type meterSeries struct {
	bytes  []int64
	idx    []int64
	latest int64
}

// NewRateMeter returns an empty meter.
func NewRateMeter(cfg RateMeterConfig) (*RateMeter, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := int(cfg.Window / cfg.Bucket)
	m := &RateMeter{cfg: cfg}
	for i := range m.series {
		m.series[i] = meterSeries{bytes: make([]int64, n), idx: make([]int64, n), latest: -1 << 62}
		for j := range m.series[i].idx {
			m.series[i].idx[j] = -1 << 62
		}
	}
	return m, nil
}

func (m *RateMeter) bucketOf(t time.Time) int64 {
	return t.UnixNano() / int64(m.cfg.Bucket)
}

// Observe records n bytes moved in direction d at now. Observations older
// than the window (behind the newest seen) are dropped.
func (m *RateMeter) Observe(now time.Time, n int64, d Direction) {
	if n <= 0 || d > Download {
		return
	}
	b := m.bucketOf(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.series[d]
	size := int64(len(s.bytes))
	if b <= s.latest-size {
		return
	}
	s.latest = max(s.latest, b)
	slot := int(((b % size) + size) % size)
	switch {
	case s.idx[slot] == b:
		s.bytes[slot] += n
	case s.idx[slot] < b:
		s.idx[slot], s.bytes[slot] = b, n
	}
}

// Rate returns the busy rate in direction d over the window before now, in
// bytes per second, and whether there was enough traffic (Config.MinBusy of
// busy time) for it to mean anything. The bucket now falls in is not counted
// until it is complete.
func (m *RateMeter) Rate(now time.Time, d Direction) (bps float64, ok bool) {
	if d > Download {
		return 0, false
	}
	cur := m.bucketOf(now)
	gap := int64(m.cfg.IdleGap / m.cfg.Bucket)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.series[d]
	size := int64(len(s.bytes))
	var total, busy int64
	prev := int64(-1 << 62)
	for b := cur - size; b < cur; b++ {
		slot := int(((b % size) + size) % size)
		if s.idx[slot] != b || s.bytes[slot] == 0 {
			continue
		}
		if g := b - prev - 1; g <= gap {
			total += s.bytes[slot]
			busy += 1 + g
		}
		// else: the start of a busy run. Its bytes went out before the
		// clock of the run starts (what a burst or a token bucket's
		// saved-up tokens sent at once), so they are not counted: n bursts
		// span n−1 gaps.
		prev = b
	}
	if busy == 0 || time.Duration(busy)*m.cfg.Bucket < m.cfg.MinBusy {
		return 0, false
	}
	return float64(total) / (float64(busy) * m.cfg.Bucket.Seconds()), true
}
