package transfer

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket of bytes shared by every upload of one Uploader,
// so the cap holds for the sum of all uploads. reserve takes tokens at once
// and lets the balance go negative: concurrent callers queue up behind each
// other's debt, which paces them fairly without a waiting list.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64 // most tokens saved up while idle
	tokens float64
	last   time.Time
}

// minBurst is the least burst: at low rates a burst below two write chunks
// would make every write wait.
const minBurst = 64 << 10

// newBucket returns a bucket refilling at rate bytes per second, full. Its
// burst is 20 ms of traffic (at least minBurst): enough to absorb timer slop
// without letting an idle uploader blast far over its cap.
func newBucket(rate int64, now time.Time) *bucket {
	burst := max(float64(minBurst), float64(rate)/50)
	return &bucket{rate: float64(rate), burst: burst, tokens: burst, last: now}
}

// reserve takes n tokens and returns how long to wait before sending n bytes.
func (b *bucket) reserve(n int, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// wait blocks until n bytes may be sent, or ctx ends.
func (b *bucket) wait(ctx context.Context, n int) error {
	d := b.reserve(n, time.Now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pacer is a byte-rate cap for other packages (a supernode's relay): the
// same token bucket the Uploader shares among its uploads.
type Pacer struct{ b *bucket }

// NewPacer caps to rate bytes per second.
func NewPacer(rate int64) *Pacer { return &Pacer{b: newBucket(rate, time.Now())} }

// Wait blocks until n bytes may pass, or ctx ends.
func (p *Pacer) Wait(ctx context.Context, n int) error { return p.b.wait(ctx, n) }
