package index

import (
	"hash/maphash"

	"github.com/strata-p2p/strata/proto"
)

// Files by content ID, without a scan (a download looks its holders up by
// content ID on every supernode the query reaches): an open-addressed
// (linear probing) table of chain heads keyed by content ID, and for each
// file a doubly linked chain through the files with the same content ID, so
// that adding and removing a file are O(1) however many leaves share it.
// About 13 bytes a file: 8 for the links, 4/0.75 for the table.

// cidLink is a file's place in its content ID's chain: DocID+1 of the
// previous and next file, 0 for none.
type cidLink struct{ prev, next uint32 }

type cidChains struct {
	heads []uint32    // DocID+1 of each chain's first file; 0 is empty
	n     int         // chains, that is distinct content IDs
	links [][]cidLink // paged like docTable, indexed by DocID
}

func newCIDChains() cidChains { return cidChains{heads: make([]uint32, 64)} }

func (c *cidChains) link(id uint32) *cidLink {
	for int(id>>docPageShift) >= len(c.links) {
		c.links = append(c.links, make([]cidLink, 1<<docPageShift))
	}
	return &c.links[id>>docPageShift][id&(1<<docPageShift-1)]
}

func (c *cidChains) bytes() int {
	return cap(c.heads)*4 + len(c.links)*(1<<docPageShift)*8
}

// cidHash keys the chain table; content IDs come from leaves, hence the
// seeded hash.
func (x *Index) cidHash(cid *proto.ContentID) int { return int(maphash.Bytes(x.seed, cid[:])) }

// cidFind returns the slot of cid's chain and its head (DocID+1), or the
// empty slot where it would go and 0.
func (x *Index) cidFind(cid *proto.ContentID) (slot int, head uint32) {
	heads := x.cids.heads
	mask := len(heads) - 1
	for i := x.cidHash(cid) & mask; ; i = (i + 1) & mask {
		s := heads[i]
		if s == 0 || x.docs.at(s-1).cid == *cid {
			return i, s
		}
	}
}

// cidAdd puts the new file id first in its content ID's chain.
func (x *Index) cidAdd(id DocID) {
	c := &x.cids
	slot, head := x.cidFind(&x.docs.at(uint32(id)).cid)
	l := c.link(uint32(id))
	*l = cidLink{next: head}
	if head != 0 {
		c.link(head - 1).prev = uint32(id) + 1
	} else {
		c.n++
	}
	c.heads[slot] = uint32(id) + 1
	if c.n*4 > len(c.heads)*3 {
		x.cidRehash(2 * len(c.heads))
	}
}

// cidRemove takes file id out of its chain; it must run while the record
// still holds the content ID.
func (x *Index) cidRemove(id DocID) {
	c := &x.cids
	l := c.link(uint32(id))
	if l.next != 0 {
		c.link(l.next - 1).prev = l.prev
	}
	if l.prev != 0 {
		c.link(l.prev - 1).next = l.next
	} else {
		slot, _ := x.cidFind(&x.docs.at(uint32(id)).cid)
		if l.next != 0 {
			c.heads[slot] = l.next
		} else {
			x.cidDeleteSlot(slot)
			c.n--
		}
	}
	*l = cidLink{}
}

// cidDeleteSlot empties slot i and shifts later members of its probe run
// back, so that lookups need no tombstones.
func (x *Index) cidDeleteSlot(i int) {
	heads := x.cids.heads
	mask := len(heads) - 1
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		s := heads[j]
		if s == 0 {
			break
		}
		home := x.cidHash(&x.docs.at(s-1).cid) & mask
		// The entry at j may move to i unless its home lies cyclically in (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (home > i || home <= j)) {
			continue
		}
		heads[i] = s
		i = j
	}
	heads[i] = 0
}

func (x *Index) cidRehash(size int) {
	old := x.cids.heads
	heads := make([]uint32, size)
	mask := size - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := x.cidHash(&x.docs.at(s-1).cid) & mask
		for heads[i] != 0 {
			i = (i + 1) & mask
		}
		heads[i] = s
	}
	x.cids.heads = heads
}

// ByContentID visits every file with content ID cid, at most limit of them
// (0: no limit), newest first, until fn returns false. It costs one table
// probe and a step per file visited, not a scan of the index.
func (x *Index) ByContentID(cid proto.ContentID, limit int, fn func(owner uint32, e proto.FileEntry) bool) {
	_, s := x.cidFind(&cid)
	for found := 0; s != 0; s = x.cids.link(s - 1).next {
		found++
		if !fn(x.docs.at(s-1).owner, x.entry(s-1)) || (limit > 0 && found >= limit) {
			return
		}
	}
}
