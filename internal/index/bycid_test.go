package index

import (
	"testing"

	"github.com/strata-p2p/strata/proto"
)

func TestByContentID(t *testing.T) {
	x := New()
	shared := proto.ContentID{9, 9, 9}
	for i := range 5000 {
		e := proto.FileEntry{ContentID: proto.ContentID{byte(i), byte(i >> 8), 1}, Name: "file.mp3", Size: 10}
		owner := uint32(i % 3)
		if i%1000 == 7 {
			e.ContentID = shared
			owner = uint32(100 + i/1000) // five holders
		}
		x.Add(owner, &e)
	}
	var owners []uint32
	x.ByContentID(shared, 0, func(owner uint32, e proto.FileEntry) bool {
		if e.ContentID != shared || e.Name != "file.mp3" {
			t.Fatalf("visited %+v", e)
		}
		owners = append(owners, owner)
		return true
	})
	if len(owners) != 5 {
		t.Fatalf("found %d holders of the shared content, want 5", len(owners))
	}
	n := 0
	x.ByContentID(shared, 2, func(uint32, proto.FileEntry) bool { n++; return true })
	if n != 2 {
		t.Fatalf("limit 2 visited %d", n)
	}
	x.RemoveOwner(owners[0])
	n = 0
	x.ByContentID(shared, 0, func(uint32, proto.FileEntry) bool { n++; return true })
	if n >= 5 {
		t.Fatalf("removed files still found: %d", n)
	}
}
