package index

import (
	"math/bits"
	"slices"
)

// Posting lists switch between two forms:
//
//   - a sorted list of doc IDs, 4 bytes per document, for rare terms;
//   - a bitmap over the whole doc-ID space, 1 bit per ID, for common terms.
//
// A list becomes a bitmap once it holds more than 1/bitmapShare of the
// doc-ID space and goes back to a list when it falls below half that (the
// gap keeps a term near the boundary from flapping). Past 1/32 a bitmap is
// also the smaller form; from 1/128 to 1/32 it costs up to four times the
// list's memory, but a two-word query then tests bits instead of searching
// a list, which is what keeps the slowest queries fast. At a million files
// that is about 150 bitmaps and 7 bytes a file more than lists alone.
const (
	bitmapShare   = 128
	bitmapMinDocs = 256 // lists never become bitmaps below this length
	listShrinkCap = 64  // lists with more spare capacity than this are trimmed
)

// posting is the set of documents holding one term.
type posting struct {
	d      []uint32 // sorted doc IDs, or bitmap words (bit i of word w is doc 32w+i)
	n      uint32   // documents in the set
	keyOff uint32   // the term: dictionary.text[keyOff:keyOff+keyLen]
	hash   uint32   // the term's hash in the dictionary
	keyLen uint8    // 0 for an unused posting
	bitmap bool
}

func (p *posting) has(id uint32) bool {
	if p.bitmap {
		w := id >> 5
		return w < uint32(len(p.d)) && p.d[w]&(1<<(id&31)) != 0
	}
	_, found := slices.BinarySearch(p.d, id)
	return found
}

// add inserts id, which must not be present. space is the size of the doc-ID
// space, which decides the form.
func (p *posting) add(id uint32, space int) {
	p.n++
	if p.bitmap {
		w := int(id >> 5)
		if w >= cap(p.d) {
			// Leave room for the doc-ID space to grow by a sixteenth.
			b := make([]uint32, w+1, w+1+w/16)
			copy(b, p.d)
			p.d = b
		} else if w >= len(p.d) {
			p.d = p.d[:w+1] // spare capacity is zero: bitmaps never shrink
		}
		p.d[w] |= 1 << (id & 31)
		return
	}
	if k := len(p.d); k == 0 || p.d[k-1] < id {
		p.d = append(growCap(p.d), id) // the common case: fresh IDs only grow
	} else {
		i, _ := slices.BinarySearch(p.d, id)
		p.d = slices.Insert(growCap(p.d), i, id)
	}
	if len(p.d) > bitmapMinDocs && len(p.d) > space/bitmapShare {
		p.toBitmap(space)
	}
}

// remove deletes ids (sorted, all present).
func (p *posting) remove(ids []uint32, space int) {
	p.n -= uint32(len(ids))
	if p.bitmap {
		for _, id := range ids {
			p.d[id>>5] &^= 1 << (id & 31)
		}
		if p.n < bitmapMinDocs/2 || int(p.n) < space/(2*bitmapShare) {
			p.toList()
		}
		return
	}
	if len(ids) == 1 {
		i, _ := slices.BinarySearch(p.d, ids[0])
		p.d = slices.Delete(p.d, i, i+1)
	} else {
		// One pass over the list from the first removed ID.
		i, _ := slices.BinarySearch(p.d, ids[0])
		w, k := i, 0
		for ; i < len(p.d); i++ {
			if k < len(ids) && p.d[i] == ids[k] {
				k++
				continue
			}
			p.d[w] = p.d[i]
			w++
		}
		p.d = p.d[:w]
	}
	if len(p.d) == 0 {
		p.d = nil
	} else if cap(p.d)-len(p.d) > listShrinkCap && cap(p.d) > 4*len(p.d) {
		p.d = slices.Clip(slices.Clone(p.d))
	}
}

func (p *posting) toBitmap(space int) {
	b := make([]uint32, (space+31)/32)
	for _, id := range p.d {
		b[id>>5] |= 1 << (id & 31)
	}
	p.d, p.bitmap = b, true
}

func (p *posting) toList() {
	l := make([]uint32, 0, p.n)
	for w, m := range p.d {
		for m != 0 {
			l = append(l, uint32(w)<<5|uint32(bits.TrailingZeros32(m)))
			m &= m - 1
		}
	}
	p.d, p.bitmap = l, false
}

// gallop returns the first index i >= lo with d[i] >= x, or len(d). It
// scans a few entries ahead, then probes 16, 32, 64, ... ahead before a
// binary search, so that walking a long list in steps costs little for short
// steps and the logarithm of the step for long ones.
func gallop(d []uint32, lo int, x uint32) int {
	for end := min(lo+8, len(d)); lo < end; lo++ {
		if d[lo] >= x {
			return lo
		}
	}
	if lo == len(d) {
		return lo
	}
	// d[lo-1] < x
	step := 16
	hi := lo
	for hi < len(d) && d[hi] < x {
		lo = hi + 1
		hi += step
		step <<= 1
	}
	if hi > len(d) {
		hi = len(d)
	}
	// d[lo-1] < x, and d[hi] >= x or hi == len(d).
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
