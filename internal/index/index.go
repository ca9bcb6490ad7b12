package index

import (
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/strata-p2p/strata/proto"
)

// DocID names a file in an Index. IDs of removed files are reused.
type DocID uint32

// docSize is the size of a doc.
const docSize = 64

// doc is the fixed-size record of one file: 64 bytes, one cache line, so
// that visiting a search hit touches one line here and one or two in the
// text arena.
type doc struct {
	cid     proto.ContentID
	size    uint64
	textOff uint32   // offset of the text in Index.text
	owner   uint32   //
	hash    uint32   // low bits of the duplicate-table hash
	textLen [4]uint8 // name, artist, title, album
	bitrate uint16   // wide16 means "see Index.wide"
	freq    uint16   // wide16 means "see Index.wide"
	dur     uint16   // wide16 means "see Index.wide"
	media   proto.MediaType
	flags   uint8
}

const (
	flagLive = 1 << iota // the slot holds a file
	flagWide             // bitrate, freq and dur are in Index.wide
)

// wide16 marks a 16-bit attribute whose value did not fit. Bitrates in
// kbit/s and durations in seconds almost always fit in 16 bits, sample rates
// up to 48 kHz do; the rest (96 kHz audio, hour-long mixes) are kept exactly
// in a map on the side.
const wide16 = math.MaxUint16

// wideAttrs holds the attributes of a file with one that does not fit.
type wideAttrs struct{ bitrate, freq, dur uint32 }

// Index is a supernode's keyword index over the files its leaves share.
//
// An Index is not safe for concurrent use: it belongs to the supernode's
// single-threaded core, which serialises every call. A Search callback must
// not modify the index it is searching.
//
// Storage is columnar: 64-byte records, one per DocID, in fixed pages; the
// name, artist, title and album of each file back to back in a paged byte
// arena; a dictionary of terms, each with its posting list (see posting);
// an open-addressed table of doc IDs that finds a file by (owner, content
// ID, name); and each owner's list of doc IDs, so that a departing leaf is
// dropped in one pass. Removed IDs are reused, and the arena is compacted
// once more than half of it is dead (one copy of the live text, a few tens
// of milliseconds at a million files).
type Index struct {
	docs docTable
	wide map[DocID]wideAttrs
	free []DocID // free slots, reused last-freed first
	n    int

	text arena

	dict dictionary // terms and their postings

	owners map[uint32][]DocID

	// slots is an open-addressed (linear probing) hash table of DocID+1
	// keyed by (owner, content ID, name); 0 marks an empty slot.
	slots []uint32
	seed  maphash.Seed

	cids cidChains // files by content ID (bycid.go)

	touched byte // see Search; kept so the compiler keeps the loads

	// Scratch buffers, reused between calls.
	tok   tokenizer
	tids  []uint32
	pairs []uint64
}

// New returns an empty index.
func New() *Index {
	seed := maphash.MakeSeed()
	return &Index{
		wide:   make(map[DocID]wideAttrs),
		owners: make(map[uint32][]DocID),
		slots:  make([]uint32, 64), cids: newCIDChains(),
		seed: seed,
		dict: newDictionary(seed),
		tok:  newTokenizer(MinWordLen),
	}
}

// Len returns the number of files in the index.
func (x *Index) Len() int { return x.n }

// OwnerLen returns the number of files owner shares.
func (x *Index) OwnerLen(owner uint32) int { return len(x.owners[owner]) }

// Terms returns the number of distinct terms.
func (x *Index) Terms() int { return x.dict.n }

// Add indexes a file shared by owner (a handle the supernode gives each
// leaf) and returns its DocID. It returns false, and changes nothing, if
// owner already shares a file with the same content ID and name, or if the
// entry's name is empty or a text field is over proto.MaxNameLen or
// proto.MaxTagLen. Callers should check entries with proto.ValidateEntry
// first; Add only guards what its storage needs.
func (x *Index) Add(owner uint32, e *proto.FileEntry) (DocID, bool) {
	if e.Name == "" || len(e.Name) > proto.MaxNameLen || len(e.Artist) > proto.MaxTagLen ||
		len(e.Title) > proto.MaxTagLen || len(e.Album) > proto.MaxTagLen {
		return 0, false
	}
	h := x.hash(owner, &e.ContentID, e.Name)
	slot, _, found := x.lookup(h, owner, &e.ContentID, e.Name)
	if found {
		return 0, false
	}
	off, ok := x.text.add(e.Name, e.Artist, e.Title, e.Album)
	if !ok && x.text.dead > 0 {
		x.compact()
		if off, ok = x.text.add(e.Name, e.Artist, e.Title, e.Album); !ok {
			return 0, false
		}
	}
	id := x.alloc()
	d := x.docs.at(uint32(id))
	*d = doc{
		cid:     e.ContentID,
		size:    e.Size,
		textOff: off,
		owner:   owner,
		hash:    uint32(h),
		textLen: [4]uint8{uint8(len(e.Name)), uint8(len(e.Artist)), uint8(len(e.Title)), uint8(len(e.Album))},
		media:   e.Media,
		flags:   flagLive,
	}
	if e.Bitrate < wide16 && e.SampleRate < wide16 && e.Duration < wide16 {
		d.bitrate, d.freq, d.dur = uint16(e.Bitrate), uint16(e.SampleRate), uint16(e.Duration)
	} else {
		d.bitrate, d.freq, d.dur = wide16, wide16, wide16
		d.flags |= flagWide
		x.wide[id] = wideAttrs{e.Bitrate, e.SampleRate, e.Duration}
	}
	x.n++

	x.slots[slot] = uint32(id) + 1
	if x.n*4 > len(x.slots)*3 {
		x.rehash(2 * len(x.slots))
	}
	x.cidAdd(id)
	x.owners[owner] = append(growCap(x.owners[owner]), id)

	space := x.docs.n
	for _, t := range x.docTerms(id, true) {
		x.dict.posts[t].add(uint32(id), space)
	}
	return id, true
}

// Remove drops the file owner shares with this content ID and name, and
// reports whether there was one.
func (x *Index) Remove(owner uint32, cid proto.ContentID, name string) bool {
	h := x.hash(owner, &cid, name)
	slot, id, found := x.lookup(h, owner, &cid, name)
	if !found {
		return false
	}
	space := x.docs.n
	one := [1]uint32{uint32(id)}
	for _, t := range x.docTerms(id, false) {
		x.removePostings(t, one[:], space)
	}
	x.deleteSlot(slot)
	x.cidRemove(id)
	docs := x.owners[owner]
	i := slices.Index(docs, id)
	docs[i] = docs[len(docs)-1]
	docs = docs[:len(docs)-1]
	if len(docs) == 0 {
		delete(x.owners, owner)
	} else {
		if cap(docs) > 64 && cap(docs) > 4*len(docs) {
			docs = slices.Clone(docs)
		}
		x.owners[owner] = docs
	}
	x.release(id)
	x.maybeCompact()
	return true
}

// RemoveOwner drops every file owner shares (its leaf has gone) and returns
// how many there were. It batches the posting-list updates: each affected
// term is rewritten once, however many of the owner's files hold it.
func (x *Index) RemoveOwner(owner uint32) int {
	docs := x.owners[owner]
	if len(docs) == 0 {
		return 0
	}
	delete(x.owners, owner)
	pairs := x.pairs[:0]
	for _, id := range docs {
		for _, t := range x.docTerms(id, false) {
			pairs = append(pairs, uint64(t)<<32|uint64(id))
		}
		d := x.docs.at(uint32(id))
		slot, _, _ := x.lookup(uint64(d.hash), owner, &d.cid, string(x.name(id)))
		x.deleteSlot(slot)
		x.cidRemove(id)
	}
	slices.Sort(pairs)
	space := x.docs.n
	ids := x.tids[:0]
	for i := 0; i < len(pairs); {
		t := uint32(pairs[i] >> 32)
		ids = ids[:0]
		for ; i < len(pairs) && uint32(pairs[i]>>32) == t; i++ {
			ids = append(ids, uint32(pairs[i]))
		}
		x.removePostings(t, ids, space)
	}
	for _, id := range docs {
		x.release(id)
	}
	x.tids = ids[:0]
	if cap(pairs) > 1<<16 {
		pairs = nil // don't keep a big scratch buffer for ever
	}
	x.pairs = pairs[:0]
	x.maybeCompact()
	return len(docs)
}

// Get returns the file with the given DocID and its owner, if it is present.
func (x *Index) Get(id DocID) (owner uint32, e proto.FileEntry, ok bool) {
	if !x.isLive(uint32(id)) {
		return 0, proto.FileEntry{}, false
	}
	return x.docs.at(uint32(id)).owner, x.entry(uint32(id)), true
}

// Bytes estimates the heap memory the index holds, in bytes: records, text
// arena, posting lists, dictionary and tables, counted by capacity, with Go
// map overheads approximated.
func (x *Index) Bytes() int {
	const (
		sliceHeader = int(unsafe.Sizeof([]byte(nil)))
		mapEntry    = 48 // a map slot with its share of control bytes and spare room
	)
	b := x.docs.bytes() + len(x.wide)*(mapEntry+16) + cap(x.free)*4 +
		x.text.bytes() + x.dict.bytes() +
		cap(x.slots)*4 + x.cids.bytes() + cap(x.tids)*4 + cap(x.pairs)*8 +
		cap(x.tok.buf) + cap(x.tok.ends)*4
	for _, docs := range x.owners {
		b += mapEntry + sliceHeader + cap(docs)*4
	}
	return b
}

// alloc returns a free doc slot, growing the records if there is none.
func (x *Index) alloc() DocID {
	if k := len(x.free); k > 0 {
		id := x.free[k-1]
		x.free = x.free[:k-1]
		return id
	}
	return DocID(x.docs.grow())
}

// release frees the slot of a file whose postings and table slot are gone.
func (x *Index) release(id DocID) {
	d := x.docs.at(uint32(id))
	x.text.dead += int(d.textLen[0]) + int(d.textLen[1]) + int(d.textLen[2]) + int(d.textLen[3])
	if d.flags&flagWide != 0 {
		delete(x.wide, id)
	}
	*d = doc{}
	x.free = append(x.free, id)
	x.n--
}

func (x *Index) isLive(id uint32) bool {
	return int(id) < x.docs.n && x.docs.at(id).flags&flagLive != 0
}

// attrs returns the bitrate, sample rate and duration of doc d.
func (x *Index) attrs(id uint32, d *doc) (bitrate, freq, dur uint32) {
	if d.flags&flagWide != 0 {
		w := x.wide[DocID(id)]
		return w.bitrate, w.freq, w.dur
	}
	return uint32(d.bitrate), uint32(d.freq), uint32(d.dur)
}

// removePostings deletes ids (sorted) from term t, and the term itself once
// no file holds it, so that words no longer shared do not pile up.
func (x *Index) removePostings(t uint32, ids []uint32, space int) {
	p := &x.dict.posts[t]
	p.remove(ids, space)
	if p.n == 0 {
		x.dict.remove(t)
	}
}

// docTerms tokenises the stored text of a file and returns its distinct
// term numbers, sorted. With create, terms not yet known are added;
// otherwise every term exists already (the file is indexed). The result
// aliases a scratch buffer.
func (x *Index) docTerms(id DocID, create bool) []uint32 {
	t := &x.tok
	t.reset()
	d := x.docs.at(uint32(id))
	off := d.textOff
	for _, l := range d.textLen {
		if l > 0 {
			t.addBytes(x.text.at(off, int(l)))
		}
		off += uint32(l)
	}
	tids := x.tids[:0]
	for i := range t.n() {
		if create {
			tids = append(tids, x.dict.intern(t.token(i)))
		} else if tid, ok := x.dict.lookupBytes(t.token(i)); ok { // always: the file is indexed
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	tids = slices.Compact(tids)
	x.tids = tids
	return tids
}

// entry rebuilds the FileEntry of a live doc. Its four strings share one
// allocation.
func (x *Index) entry(id uint32) proto.FileEntry {
	d := x.docs.at(id)
	l := d.textLen
	a, b, c := int(l[0]), int(l[0])+int(l[1]), int(l[0])+int(l[1])+int(l[2])
	s := string(x.text.at(d.textOff, c+int(l[3])))
	bitrate, freq, dur := x.attrs(id, d)
	return proto.FileEntry{
		ContentID:  d.cid,
		Name:       s[:a],
		Artist:     s[a:b],
		Title:      s[b:c],
		Album:      s[c:],
		Size:       d.size,
		Media:      d.media,
		Bitrate:    bitrate,
		SampleRate: freq,
		Duration:   dur,
	}
}

// name returns the stored name of doc id. It aliases the arena.
func (x *Index) name(id DocID) []byte {
	d := x.docs.at(uint32(id))
	return x.text.at(d.textOff, int(d.textLen[0]))
}

// maybeCompact rewrites the text arena once more than half of it belongs to
// removed files, so that churn does not grow it without bound. It costs one
// copy of the live text, amortised over the removals that made it necessary.
func (x *Index) maybeCompact() {
	if x.text.dead > textPageSize && x.text.dead > x.text.used/2 {
		x.compact()
	}
}

func (x *Index) compact() {
	var text arena
	for id := range uint32(x.docs.n) {
		d := x.docs.at(id)
		if d.flags&flagLive == 0 {
			continue
		}
		l := d.textLen
		s := x.text.at(d.textOff, int(l[0])+int(l[1])+int(l[2])+int(l[3]))
		d.textOff, _ = text.addBytes(s) // cannot fail: the live text fit before
	}
	x.text = text
}

// hash keys the duplicate table. The content ID and name come from leaves,
// so both go through a seeded hash; the owner is ours and is mixed in so that
// a popular file shared by many leaves does not pile up in one probe chain.
// Only the low 32 bits are used (and kept in doc.hash).
func (x *Index) hash(owner uint32, cid *proto.ContentID, name string) uint64 {
	h := maphash.String(x.seed, name) ^ bits.RotateLeft64(maphash.Bytes(x.seed, cid[:]), 29)
	return uint64(uint32(h ^ h>>32 ^ uint64(owner)*0x9e3779b97f4a7c15))
}

// lookup finds the slot of (owner, cid, name), or the empty slot where it
// would go.
func (x *Index) lookup(h uint64, owner uint32, cid *proto.ContentID, name string) (slot int, id DocID, found bool) {
	mask := len(x.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return i, 0, false
		}
		d := x.docs.at(s - 1)
		if d.hash == uint32(h) && d.owner == owner && d.cid == *cid && string(x.name(DocID(s-1))) == name {
			return i, DocID(s - 1), true
		}
	}
}

// deleteSlot empties slot i and shifts later members of its probe run back,
// so that lookups need no tombstones.
func (x *Index) deleteSlot(i int) {
	mask := len(x.slots) - 1
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := int(x.docs.at(s-1).hash) & mask
		// The entry at j may move to i unless its home lies cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (home > i || home <= j)) {
			continue
		}
		x.slots[i] = s
		i = j
	}
	x.slots[i] = 0
}

func (x *Index) rehash(size int) {
	old := x.slots
	x.slots = make([]uint32, size)
	mask := size - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := int(x.docs.at(s-1).hash) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}
