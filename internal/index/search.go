package index

import (
	"math"
	"math/bits"
	"slices"

	"github.com/strata-p2p/strata/proto"
)

// batchLen is how many candidates Search collects from the posting lists
// before it visits them.
const batchLen = 64

// mergeRatio: two lists whose lengths differ by less than this factor are
// intersected by a branch-free merge; beyond it, by walking the shorter and
// galloping through the longer.
const mergeRatio = 8

// Search calls fn with each file matching q, in DocID order, until fn
// returns false or limit files have been visited (limit <= 0 means no
// limit). fn receives a copy of the entry; it must not modify the index.
//
// Search looks up each word's posting list and intersects them starting from
// the rarest: when every list is a bitmap it ANDs them a word at a time; two
// lists of similar length are merged; otherwise it walks the rarest list and
// tests each document against the others (a bit test for a bitmap, a
// galloping forward search for a list). The filters are applied to the
// documents that hold every word.
func (x *Index) Search(q *Query, limit int, fn func(owner uint32, e proto.FileEntry) bool) {
	if q == nil || len(q.words) == 0 || len(q.words) > MaxQueryWords {
		return
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	var it intersection
	it.ps = it.buf[:0]
	for _, w := range q.words {
		t, ok := x.dict.lookup(w)
		if !ok {
			return
		}
		it.ps = append(it.ps, &x.dict.posts[t])
	}
	it.start()
	filtered := len(q.nums) > 0 || len(q.exts) > 0 || len(q.media) > 0
	found := 0
	var buf [batchLen]uint32
	for {
		n := it.next(buf[:])
		if n == 0 {
			return
		}
		// Touch the batch's records and text first: the loads are
		// independent, so their cache misses overlap instead of queueing
		// behind each entry's allocation and copy.
		var touch byte
		for _, id := range buf[:n] {
			d := x.docs.at(id)
			touch += x.text.pages[d.textOff>>textPageShift][d.textOff&(textPageSize-1)]
		}
		x.touched += touch
		for _, id := range buf[:n] {
			if filtered && !x.keep(q, id) {
				continue
			}
			found++
			if !fn(x.docs.at(id).owner, x.entry(id)) || found >= limit {
				return
			}
		}
	}
}

// keep applies q's filters to doc id.
func (x *Index) keep(q *Query, id uint32) bool {
	d := x.docs.at(id)
	bitrate, freq, dur := x.attrs(id, d)
	if !q.matchAttrs(d.size, bitrate, freq, dur, d.media) {
		return false
	}
	return len(q.exts) == 0 || matchExt(q.exts, x.text.at(d.textOff, int(d.textLen[0])))
}

// Ways an intersection proceeds.
const (
	walkRarest = iota // walk the rarest list, test the others
	mergeTwo          // merge two lists of similar length
	andBitmaps        // every set is a bitmap
)

// intersection yields, in batches, the doc IDs present in every posting
// list of ps.
type intersection struct {
	ps     []*posting
	buf    [MaxQueryWords]*posting // backs ps
	how    int
	i, j   int                // positions: rarest list and second list, or bitmap word
	cursor [MaxQueryWords]int // walkRarest: position in each other list
	word   uint32             // andBitmaps: bits of word i not yet yielded
}

func (it *intersection) start() {
	slices.SortFunc(it.ps, func(a, b *posting) int { return int(a.n) - int(b.n) })
	switch {
	case it.ps[0].bitmap: // the rarest is a bitmap, so all are
		it.how = andBitmaps
		it.i = -1
	case len(it.ps) == 2 && !it.ps[1].bitmap && len(it.ps[1].d) < mergeRatio*len(it.ps[0].d):
		it.how = mergeTwo
	default:
		it.how = walkRarest
	}
}

// next fills buf with the next IDs and returns how many; 0 means done.
func (it *intersection) next(buf []uint32) int {
	switch it.how {
	case mergeTwo:
		return it.merge(buf)
	case andBitmaps:
		return it.and(buf)
	}
	return it.walk(buf)
}

func (it *intersection) walk(buf []uint32) int {
	n := 0
	rare, others := it.ps[0].d, it.ps[1:]
next:
	for it.i < len(rare) && n < len(buf) {
		id := rare[it.i]
		it.i++
		for k, p := range others {
			if p.bitmap {
				if w := id >> 5; w >= uint32(len(p.d)) || p.d[w]&(1<<(id&31)) == 0 {
					continue next
				}
				continue
			}
			c := gallop(p.d, it.cursor[k], id)
			it.cursor[k] = c
			if c == len(p.d) {
				it.i = len(rare) // this list has nothing at or after id
				continue next
			}
			if p.d[c] != id {
				continue next
			}
		}
		buf[n] = id
		n++
	}
	return n
}

// merge intersects two sorted lists without data-dependent branches: with
// postings of similar length the branches of an ordinary merge are
// unpredictable, and mispredictions would cost more than the comparisons.
func (it *intersection) merge(buf []uint32) int {
	a, b := it.ps[0].d, it.ps[1].d
	i, j, n := it.i, it.j, 0
	for i < len(a) && j < len(b) && n < len(buf) {
		x, y := uint64(a[i]), uint64(b[j])
		lt := int((x - y) >> 63) // 1 if x < y
		gt := int((y - x) >> 63) // 1 if x > y
		buf[n] = uint32(x)
		n += 1 - lt - gt
		i += 1 - gt
		j += 1 - lt
	}
	it.i, it.j = i, j
	return n
}

func (it *intersection) and(buf []uint32) int {
	words := len(it.ps[0].d)
	for _, p := range it.ps[1:] {
		words = min(words, len(p.d))
	}
	first, rest := it.ps[0].d[:words], it.ps[1:]
	var second []uint32
	if len(rest) == 1 {
		second, rest = rest[0].d[:words], nil
	}
	i, m, n := it.i, it.word, 0
	for n < len(buf) {
		if m == 0 {
			// Find the next word with a bit set in every bitmap. This loop
			// is most of the cost of a query on common words that seldom
			// occur together, so it is kept tight for the usual two words.
			i++
			if second != nil {
				for i < words && first[i]&second[i] == 0 {
					i++
				}
			}
			if i >= words {
				break
			}
			m = first[i]
			if second != nil {
				m &= second[i]
			}
			for _, p := range rest {
				m &= p.d[i]
			}
			continue
		}
		buf[n] = uint32(i)<<5 | uint32(bits.TrailingZeros32(m))
		n++
		m &= m - 1
	}
	it.i, it.word = i, m
	return n
}
