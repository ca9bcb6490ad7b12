package transfer

import (
	"math"
	"slices"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// picker decides which pieces each source fetches next. It is plain data
// with no I/O and no locking (the download's mutex guards it), so its
// policy is tested on its own:
//
//   - a source gets the lowest run of pieces that are missing and that no
//     other source is fetching: chunk pieces, or for a fast source up to
//     maxChunkFactor times that, about chunkTarget of its measured rate
//     (fewer, larger ranges cost less per byte on both ends);
//   - when every missing piece is being fetched (endgame), an idle source
//     duplicates the rest of the assignment expected to finish last: a
//     queued one first, then the slowest; each assignment is duplicated at
//     most once, so at most two sources fetch a piece;
//   - a failed or finished assignment's unverified pieces go back to the pool.
type picker struct {
	size   uint64
	n      int
	chunk  int
	have   []bool
	claims []uint16 // assignments covering each piece
	left   int      // pieces not had
	bytes  uint64   // bytes of the pieces had
	hint   int      // no piece below hint is both missing and unclaimed
	active []*assignment
}

// assignment is one range of pieces one source was asked for.
type assignment struct {
	src    *holder
	first  int
	count  int
	queued bool // the source said Queued and has not sent RangeReply yet
	dupOf  *assignment
	dups   int // duplicates of this one running
}

func newPicker(size uint64, chunk int, have []bool) *picker {
	n := proto.NumPieces(size)
	p := &picker{size: size, n: n, chunk: max(1, chunk), have: make([]bool, n), claims: make([]uint16, n), left: n}
	for i := range min(len(have), n) {
		if have[i] {
			p.mark(i)
		}
	}
	return p
}

// pieceLen is the length of piece i.
func pieceLen(size uint64, i int) int {
	off := uint64(i) * proto.PieceSize
	return int(min(size-off, proto.PieceSize))
}

func (p *picker) mark(i int) {
	p.have[i] = true
	p.left--
	p.bytes += uint64(pieceLen(p.size, i))
}

// complete reports whether every piece is had.
func (p *picker) complete() bool { return p.left == 0 }

// pick returns src's next assignment, or nil when there is nothing for it
// to do right now. Without dup it never duplicates (a source asking ahead
// of its current range should not take over another's).
func (p *picker) pick(src *holder, now time.Time, dup bool) *assignment {
	limit := p.chunkFor(src, now)
	for i := p.hint; i < p.n; i++ {
		if p.have[i] || p.claims[i] > 0 {
			continue
		}
		j := i
		for j < p.n && j-i < limit && !p.have[j] && p.claims[j] == 0 {
			j++
		}
		p.hint = j
		return p.claim(src, i, j-i, nil)
	}
	p.hint = p.n
	if !dup {
		return nil
	}

	var best *assignment
	var bestLo, bestHi int
	bestETA := -1.0
	for _, a := range p.active {
		if a.src == src || a.dupOf != nil || a.dups > 0 {
			continue
		}
		lo, hi := p.missingSpan(a)
		if lo < 0 {
			continue
		}
		if eta := p.eta(a, lo, hi, now); eta > bestETA {
			best, bestLo, bestHi, bestETA = a, lo, hi, eta
		}
	}
	if best == nil {
		return nil
	}
	best.dups++
	return p.claim(src, bestLo, bestHi-bestLo, best)
}

// Range sizing for fast sources.
const (
	chunkTarget    = 50 * time.Millisecond
	maxChunkFactor = 4
)

// chunkFor is how many pieces src gets in one range.
func (p *picker) chunkFor(src *holder, now time.Time) int {
	rate := src.rate(now)
	if rate <= 0 {
		return p.chunk
	}
	want := int(rate * chunkTarget.Seconds() / proto.PieceSize)
	return min(max(want, p.chunk), maxChunkFactor*p.chunk)
}

func (p *picker) claim(src *holder, first, count int, dupOf *assignment) *assignment {
	a := &assignment{src: src, first: first, count: count, dupOf: dupOf}
	for i := first; i < first+count; i++ {
		p.claims[i]++
	}
	p.active = append(p.active, a)
	return a
}

// missingSpan is the range from a's first to its last missing piece, or
// (-1, -1) when it has none left.
func (p *picker) missingSpan(a *assignment) (int, int) {
	lo, hi := -1, -1
	for i := a.first; i < a.first+a.count; i++ {
		if !p.have[i] {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	return lo, hi
}

// eta estimates seconds until a has pieces [lo, hi) at its source's rate
// so far: infinite while queued, very long before the source delivered
// anything.
func (p *picker) eta(a *assignment, lo, hi int, now time.Time) float64 {
	if a.queued {
		return math.Inf(1)
	}
	rate := a.src.rate(now)
	if rate <= 0 {
		return 1e12
	}
	return float64(hi-lo) * proto.PieceSize / rate
}

// done records that piece i arrived, verified and written, through a. It
// returns false when another source delivered it first.
func (p *picker) done(a *assignment, i int) bool {
	if p.have[i] {
		return false
	}
	p.mark(i)
	return true
}

// obsolete reports whether every piece of a from next on is already had, so
// its source can stop.
func (p *picker) obsolete(a *assignment, next int) bool {
	for i := next; i < a.first+a.count; i++ {
		if !p.have[i] {
			return false
		}
	}
	return true
}

// release ends a: its pieces that are still missing become free.
func (p *picker) release(a *assignment) {
	i := slices.Index(p.active, a)
	if i < 0 {
		return
	}
	p.active = slices.Delete(p.active, i, i+1)
	for k := a.first; k < a.first+a.count; k++ {
		p.claims[k]--
	}
	if a.dupOf != nil {
		a.dupOf.dups--
	}
	p.hint = min(p.hint, a.first)
}

// bitfield returns the pieces had, one bit each, most significant first.
func (p *picker) bitfield() []byte {
	b := make([]byte, (p.n+7)/8)
	for i, h := range p.have {
		if h {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return b
}

// bitsToBools expands a bitfield of n pieces.
func bitsToBools(b []byte, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		if i/8 < len(b) && b[i/8]&(0x80>>(i%8)) != 0 {
			out[i] = true
		}
	}
	return out
}
