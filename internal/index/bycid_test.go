package index

import (
	"fmt"
	"math/rand/v2"
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

// ByContentID agrees with a scan of every record through random adds,
// removes and departing owners, with a few content IDs shared by many
// owners (long chains) and many held once, across table growth and doc ID
// reuse.
func TestByContentIDMatchesScan(t *testing.T) {
	x := New()
	rng := rand.New(rand.NewPCG(1, 2))
	cidOf := func(k int) proto.ContentID { return proto.ContentID{byte(k), byte(k >> 8), 7} }
	type key struct {
		owner uint32
		cid   proto.ContentID
		name  string
	}
	live := map[key]bool{}
	check := func(step int) {
		for k := range 40 {
			cid := cidOf(k)
			want := map[key]bool{}
			for f := range live {
				if f.cid == cid {
					want[f] = true
				}
			}
			got := map[key]bool{}
			x.ByContentID(cid, 0, func(owner uint32, e proto.FileEntry) bool {
				f := key{owner, e.ContentID, e.Name}
				if got[f] || !want[f] {
					t.Fatalf("step %d: content %d: visited %+v (twice, or not live)", step, k, f)
				}
				got[f] = true
				return true
			})
			if len(got) != len(want) {
				t.Fatalf("step %d: content %d: visited %d files, %d hold it", step, k, len(got), len(want))
			}
		}
	}
	for step := range 20000 {
		switch r := rng.IntN(100); {
		case r < 60: // add: content 0-9 popular, the rest spread wide
			k := rng.IntN(10)
			if rng.IntN(2) == 0 {
				k = 10 + rng.IntN(3000)
			}
			f := key{uint32(rng.IntN(50)), cidOf(k), fmt.Sprintf("file %d.mp3", rng.IntN(4))}
			e := proto.FileEntry{ContentID: f.cid, Name: f.name, Size: 1}
			if _, ok := x.Add(f.owner, &e); ok != !live[f] {
				t.Fatalf("step %d: Add %+v reported %v", step, f, ok)
			}
			live[f] = true
		case r < 97: // remove one
			for f := range live {
				if !x.Remove(f.owner, f.cid, f.name) {
					t.Fatalf("step %d: Remove %+v failed", step, f)
				}
				delete(live, f)
				break
			}
		default: // an owner leaves
			owner := uint32(rng.IntN(50))
			x.RemoveOwner(owner)
			for f := range live {
				if f.owner == owner {
					delete(live, f)
				}
			}
		}
		if step%500 == 0 {
			check(step)
		}
	}
	check(-1)
	if x.Len() != len(live) {
		t.Fatalf("index holds %d files, want %d", x.Len(), len(live))
	}
}
