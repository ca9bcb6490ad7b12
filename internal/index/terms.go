package index

import (
	"hash/maphash"
	"unsafe"
)

// dictionary maps term text to a term number, which indexes its posting.
//
// A Go map[string]uint32 costs about 110 bytes a term once the key's own
// allocation and the map's spare room are counted; a vocabulary grows with
// every odd word leaves share, so this table keeps the term bytes back to
// back in one arena and probes an open-addressed (linear) table of term
// numbers, about 50 bytes a term with the posting itself. Terms come from
// leaves, so they are hashed with a seeded hash.
type dictionary struct {
	seed  maphash.Seed
	slots []uint32 // term+1; 0 is empty
	posts []posting
	free  []uint32 // unused term numbers
	text  []byte   // term bytes, addressed by posting.keyOff and keyLen
	dead  int      // bytes of text belonging to deleted terms
	n     int
}

func newDictionary(seed maphash.Seed) dictionary {
	return dictionary{seed: seed, slots: make([]uint32, 64)}
}

func (d *dictionary) key(p *posting) []byte { return d.text[p.keyOff : p.keyOff+uint32(p.keyLen)] }

// find returns the number of term tok, if it exists, and otherwise the
// empty slot where it would go.
func find[S string | []byte](d *dictionary, tok S, h uint32) (slot int, t uint32, ok bool) {
	mask := len(d.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := d.slots[i]
		if s == 0 {
			return i, 0, false
		}
		p := &d.posts[s-1]
		if p.hash == h && int(p.keyLen) == len(tok) && string(d.key(p)) == string(tok) {
			return i, s - 1, true
		}
	}
}

// lookup returns the number of the term spelt w.
func (d *dictionary) lookup(w string) (uint32, bool) {
	_, t, ok := find(d, w, uint32(maphash.String(d.seed, w)))
	return t, ok
}

// lookupBytes is lookup for a term in a byte slice.
func (d *dictionary) lookupBytes(tok []byte) (uint32, bool) {
	_, t, ok := find(d, tok, uint32(maphash.Bytes(d.seed, tok)))
	return t, ok
}

// intern returns the number of term tok, adding the term if it is new.
// Terms are at most 255 bytes (a name's length cap).
func (d *dictionary) intern(tok []byte) uint32 {
	h := uint32(maphash.Bytes(d.seed, tok))
	slot, t, ok := find(d, tok, h)
	if ok {
		return t
	}
	if k := len(d.free); k > 0 {
		t = d.free[k-1]
		d.free = d.free[:k-1]
	} else {
		d.posts = append(growCap(d.posts), posting{})
		t = uint32(len(d.posts) - 1)
	}
	d.text = append(growCap(d.text), tok...)
	d.posts[t] = posting{keyOff: uint32(len(d.text) - len(tok)), keyLen: uint8(len(tok)), hash: h}
	d.slots[slot] = t + 1
	d.n++
	if d.n*4 > len(d.slots)*3 {
		d.rehash(2 * len(d.slots))
	}
	return t
}

// remove deletes term t, whose posting is empty.
func (d *dictionary) remove(t uint32) {
	p := &d.posts[t]
	mask := len(d.slots) - 1
	i := int(p.hash) & mask
	for d.slots[i] != t+1 {
		i = (i + 1) & mask
	}
	// Empty slot i and shift later members of its probe run back, so that
	// lookups need no tombstones.
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		s := d.slots[j]
		if s == 0 {
			break
		}
		home := int(d.posts[s-1].hash) & mask
		// The entry at j may move to i unless its home lies cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (home > i || home <= j)) {
			continue
		}
		d.slots[i] = s
		i = j
	}
	d.slots[i] = 0
	d.dead += int(p.keyLen)
	*p = posting{}
	d.free = append(d.free, t)
	d.n--
	if d.dead > 1<<16 && d.dead > len(d.text)/2 {
		d.compact()
	}
}

// compact rewrites the term text without the bytes of deleted terms.
func (d *dictionary) compact() {
	text := make([]byte, 0, len(d.text)-d.dead+len(d.text)/8)
	for i := range d.posts {
		p := &d.posts[i]
		if p.keyLen == 0 {
			continue
		}
		text = append(text, d.key(p)...)
		p.keyOff = uint32(len(text) - int(p.keyLen))
	}
	d.text, d.dead = text, 0
}

func (d *dictionary) rehash(size int) {
	d.slots = make([]uint32, size)
	mask := size - 1
	for t := range d.posts {
		p := &d.posts[t]
		if p.keyLen == 0 {
			continue
		}
		i := int(p.hash) & mask
		for d.slots[i] != 0 {
			i = (i + 1) & mask
		}
		d.slots[i] = uint32(t) + 1
	}
}

func (d *dictionary) bytes() int {
	b := cap(d.slots)*4 + cap(d.posts)*int(unsafe.Sizeof(posting{})) + cap(d.free)*4 + cap(d.text)
	for i := range d.posts {
		b += cap(d.posts[i].d) * 4
	}
	return b
}
