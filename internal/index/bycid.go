package index

import "github.com/strata-p2p/strata/proto"

// ByContentID visits every file with content ID cid, at most limit of them
// (limit <= 0: all); fn returns false to stop. It scans the record table
// (64 bytes a file: a few milliseconds for a million files), which suits the
// rare "who holds this file?" lookup of a download; keyword searches never
// scan.
func (x *Index) ByContentID(cid proto.ContentID, limit int, fn func(owner uint32, e proto.FileEntry) bool) {
	found := 0
	for p, page := range x.docs.pages {
		for i := range page {
			d := &page[i]
			if d.flags&flagLive == 0 || d.cid != cid {
				continue
			}
			found++
			id := uint32(p<<docPageShift + i)
			if !fn(d.owner, x.entry(id)) || (limit > 0 && found >= limit) {
				return
			}
		}
	}
}
