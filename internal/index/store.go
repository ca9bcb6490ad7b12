package index

import "slices"

// Long-lived storage grows in fixed pages rather than by append, so that a
// million files do not leave a quarter of their records' size as spare
// capacity, and growing never copies what is already stored.

// docPageShift sets the records per page: 4,096 records of 64 bytes.
const docPageShift = 12

// docTable holds the records, indexed by DocID.
type docTable struct {
	pages [][]doc
	n     int // slots handed out: the size of the doc-ID space
}

func (t *docTable) at(id uint32) *doc {
	return &t.pages[id>>docPageShift][id&(1<<docPageShift-1)]
}

// grow adds a slot and returns its ID.
func (t *docTable) grow() uint32 {
	if t.n == len(t.pages)<<docPageShift {
		t.pages = append(t.pages, make([]doc, 1<<docPageShift))
	}
	t.n++
	return uint32(t.n - 1)
}

func (t *docTable) bytes() int { return len(t.pages) * (1 << docPageShift) * docSize }

// Text pages are 1 MiB; an offset is page<<textPageShift | position, so 4,096
// pages (4 GiB) fit a uint32. A file's text (at most 639 bytes) never
// straddles pages.
const (
	textPageShift = 20
	textPageSize  = 1 << textPageShift
	maxTextPages  = 1 << (32 - textPageShift)
)

// arena holds the text of every file: name, artist, title and album back to
// back.
type arena struct {
	pages [][]byte
	used  int // bytes stored, live or dead
	dead  int // bytes of removed files
}

// add stores the four strings together and returns their offset; ok is
// false if the arena is full.
func (a *arena) add(s0, s1, s2, s3 string) (off uint32, ok bool) {
	n := len(s0) + len(s1) + len(s2) + len(s3)
	k := len(a.pages) - 1
	if k < 0 || len(a.pages[k])+n > textPageSize {
		if len(a.pages) == maxTextPages {
			return 0, false
		}
		a.pages = append(a.pages, make([]byte, 0, textPageSize))
		k++
	}
	p := a.pages[k]
	off = uint32(k)<<textPageShift | uint32(len(p))
	p = append(p, s0...)
	p = append(p, s1...)
	p = append(p, s2...)
	p = append(p, s3...)
	a.pages[k] = p
	a.used += n
	return off, true
}

// addBytes is add for one byte slice.
func (a *arena) addBytes(b []byte) (off uint32, ok bool) {
	k := len(a.pages) - 1
	if k < 0 || len(a.pages[k])+len(b) > textPageSize {
		if len(a.pages) == maxTextPages {
			return 0, false
		}
		a.pages = append(a.pages, make([]byte, 0, textPageSize))
		k++
	}
	off = uint32(k)<<textPageShift | uint32(len(a.pages[k]))
	a.pages[k] = append(a.pages[k], b...)
	a.used += len(b)
	return off, true
}

// at returns n bytes of text at off. The result aliases the arena.
func (a *arena) at(off uint32, n int) []byte {
	p := a.pages[off>>textPageShift]
	o := int(off & (textPageSize - 1))
	return p[o : o+n]
}

func (a *arena) bytes() int { return len(a.pages) * textPageSize }

// growCap returns s with room for at least one more element. Capacity grows
// by an eighth (append grows by a quarter to double), rounded up to the
// allocator's size class, so that the many long-lived lists waste little.
func growCap[T any](s []T) []T {
	if len(s) < cap(s) {
		return s
	}
	t := slices.Grow([]T(nil), len(s)+max(len(s)/8, 1))
	return append(t, s...)
}
