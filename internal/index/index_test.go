package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/strata-p2p/strata/internal/index/corpus"
	"github.com/strata-p2p/strata/proto"
)

func cid(n int) proto.ContentID {
	var c proto.ContentID
	c[0], c[1], c[2], c[31] = byte(n), byte(n>>8), byte(n>>16), 1
	return c
}

func file(n int, name string) *proto.FileEntry {
	return &proto.FileEntry{ContentID: cid(n), Name: name, Size: uint64(1000 * n), Media: proto.MediaAudio, Bitrate: 128, SampleRate: 44100, Duration: 200}
}

// hit is one search result, comparable.
type hit struct {
	owner uint32
	cid   proto.ContentID
	name  string
}

func search(x *Index, q *Query, limit int) []hit {
	var hits []hit
	x.Search(q, limit, func(owner uint32, e proto.FileEntry) bool {
		hits = append(hits, hit{owner, e.ContentID, e.Name})
		return true
	})
	return hits
}

func names(hits []hit) string {
	var s []string
	for _, h := range hits {
		s = append(s, fmt.Sprintf("%d:%s", h.owner, h.name))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func TestAddSearchRemove(t *testing.T) {
	x := New()
	if _, ok := x.Add(1, file(1, "Beatles - Yesterday.mp3")); !ok {
		t.Fatal("Add refused a new file")
	}
	x.Add(1, file(2, "Beatles - Let It Be.mp3"))
	x.Add(2, file(3, "Yesterday Once More - Carpenters.ogg"))
	x.Add(2, file(1, "Beatles - Yesterday.mp3")) // same file, another owner

	for _, c := range []struct{ q, want string }{
		{"yesterday", "1:Beatles - Yesterday.mp3, 2:Beatles - Yesterday.mp3, 2:Yesterday Once More - Carpenters.ogg"},
		{"beatles yesterday", "1:Beatles - Yesterday.mp3, 2:Beatles - Yesterday.mp3"},
		{"beatles mp3", "1:Beatles - Let It Be.mp3, 1:Beatles - Yesterday.mp3, 2:Beatles - Yesterday.mp3"},
		{"yesterday ogg", "2:Yesterday Once More - Carpenters.ogg"},
		{"beatles carpenters", ""},
		{"nothing", ""},
	} {
		if got := names(search(x, mustParse(t, c.q), 0)); got != c.want {
			t.Errorf("search %q = %q, want %q", c.q, got, c.want)
		}
	}
	if x.Len() != 4 || x.OwnerLen(1) != 2 || x.OwnerLen(2) != 2 || x.OwnerLen(3) != 0 {
		t.Fatalf("Len %d, OwnerLen 1: %d, 2: %d, 3: %d; want 4, 2, 2, 0", x.Len(), x.OwnerLen(1), x.OwnerLen(2), x.OwnerLen(3))
	}

	if x.Remove(1, cid(1), "beatles - yesterday.mp3") {
		t.Error("Remove matched a name that differs in case")
	}
	if x.Remove(3, cid(1), "Beatles - Yesterday.mp3") {
		t.Error("Remove removed a file of another owner")
	}
	if !x.Remove(1, cid(1), "Beatles - Yesterday.mp3") {
		t.Fatal("Remove did not find the file")
	}
	if x.Remove(1, cid(1), "Beatles - Yesterday.mp3") {
		t.Error("Remove found a file twice")
	}
	if got, want := names(search(x, mustParse(t, "beatles yesterday"), 0)), "2:Beatles - Yesterday.mp3"; got != want {
		t.Errorf("after Remove: %q, want %q", got, want)
	}
	if x.Len() != 3 || x.OwnerLen(1) != 1 {
		t.Errorf("after Remove: Len %d, OwnerLen(1) %d; want 3, 1", x.Len(), x.OwnerLen(1))
	}
}

func TestEntryRoundTrip(t *testing.T) {
	x := New()
	in := proto.FileEntry{
		ContentID: cid(7), Name: "Sigur Rós - Hoppípolla.flac", Size: 1 << 40, Media: proto.MediaAudio,
		Bitrate: 900, SampleRate: 44100, Duration: 268, Artist: "Sigur Rós", Title: "Hoppípolla", Album: "Takk...",
	}
	id, _ := x.Add(9, &in)
	var got []proto.FileEntry
	x.Search(mustParse(t, "hoppipolla"), 0, func(owner uint32, e proto.FileEntry) bool {
		if owner != 9 {
			t.Errorf("owner %d, want 9", owner)
		}
		got = append(got, e)
		return true
	})
	if len(got) != 1 || got[0] != in {
		t.Fatalf("search returned %+v, want %+v", got, in)
	}
	if owner, e, ok := x.Get(id); !ok || owner != 9 || e != in {
		t.Fatalf("Get(%d) = %d, %+v, %v", id, owner, e, ok)
	}
	if _, _, ok := x.Get(id + 1); ok {
		t.Fatal("Get of an unused ID succeeded")
	}
}

func TestWideAttributes(t *testing.T) {
	x := New()
	wide := file(1, "hires track.flac")
	wide.SampleRate, wide.Bitrate, wide.Duration = 192000, 9216, 100_000
	narrow := file(2, "lores track.mp3")
	narrow.Duration = 65535
	x.Add(1, wide)
	x.Add(1, narrow)
	for _, c := range []struct{ q, want string }{
		{"track freq=192000", "1:hires track.flac"},
		{"track freq>48000", "1:hires track.flac"},
		{"track bitrate>=9216", "1:hires track.flac"},
		{"track duration>65535", "1:hires track.flac"},
		{"track duration=65535", "1:lores track.mp3"},
	} {
		if got := names(search(x, mustParse(t, c.q), 0)); got != c.want {
			t.Errorf("search %q = %q, want %q", c.q, got, c.want)
		}
	}
	_, e, _ := x.Get(0)
	if e != *wide {
		t.Fatalf("Get = %+v, want %+v", e, *wide)
	}
	x.Remove(1, wide.ContentID, wide.Name)
	x.Remove(1, narrow.ContentID, narrow.Name) // 65535 does not fit either: it marks a wide value
	if len(x.wide) != 0 {
		t.Fatalf("removed file left %d entries in the wide map", len(x.wide))
	}
}

func TestAccentsAndCase(t *testing.T) {
	x := New()
	x.Add(1, file(1, "BEYONCÉ - Déjà Vu.mp3"))
	x.Add(1, file(2, "Motörhead - Ace Of Spades.mp3"))
	x.Add(1, file(3, "Die Ärzte - Straße.ogg"))
	x.Add(1, &proto.FileEntry{ContentID: cid(4), Name: "track01.mp3", Artist: "Björk", Title: "Jóga"})
	for _, c := range []struct{ q, want string }{
		{"beyonce deja vu", "1:BEYONCÉ - Déjà Vu.mp3"},
		{"Beyoncé DÉJÀ", "1:BEYONCÉ - Déjà Vu.mp3"},
		{"motorhead", "1:Motörhead - Ace Of Spades.mp3"},
		{"MOTÖRHEAD ace", "1:Motörhead - Ace Of Spades.mp3"},
		{"strasse arzte", "1:Die Ärzte - Straße.ogg"},
		{"STRASSE", "1:Die Ärzte - Straße.ogg"},
		{"bjork joga", "1:track01.mp3"},
		{"beyon", ""},
	} {
		if got := names(search(x, mustParse(t, c.q), 0)); got != c.want {
			t.Errorf("search %q = %q, want %q", c.q, got, c.want)
		}
	}
}

func TestFilters(t *testing.T) {
	x := New()
	add := func(n int, name string, size uint64, media proto.MediaType, bitrate, freq, dur uint32) {
		x.Add(1, &proto.FileEntry{ContentID: cid(n), Name: name, Size: size, Media: media, Bitrate: bitrate, SampleRate: freq, Duration: dur})
	}
	add(1, "song one.mp3", 3_000_000, proto.MediaAudio, 128, 44100, 180)
	add(2, "song two.mp3", 8_000_000, proto.MediaAudio, 320, 44100, 200)
	add(3, "song three.ogg", 5_000_000, proto.MediaAudio, 192, 48000, 400)
	add(4, "song four.avi", 700_000_000, proto.MediaVideo, 0, 0, 0)
	add(5, "song five.MP3", 4_000_000, proto.MediaAudio, 256, 22050, 90)
	for _, c := range []struct{ q, want string }{
		{"song size>4MB", "1:song four.avi, 1:song three.ogg, 1:song two.mp3"},
		{"song size>=4MB size<=5MB", "1:song five.MP3, 1:song three.ogg"},
		{"song bitrate>=192", "1:song three.ogg, 1:song two.mp3, 1:song five.MP3"},
		{"song bitrate<192", "1:song four.avi, 1:song one.mp3"},
		{"song freq=44100", "1:song one.mp3, 1:song two.mp3"},
		{"song samplerate!=44100", "1:song five.MP3, 1:song four.avi, 1:song three.ogg"},
		{"song duration<3m", "1:song five.MP3, 1:song four.avi"},
		{"song duration>=3:00", "1:song one.mp3, 1:song three.ogg, 1:song two.mp3"},
		{"song ext:mp3", "1:song five.MP3, 1:song one.mp3, 1:song two.mp3"},
		{"song ext:ogg ext:avi", "1:song four.avi, 1:song three.ogg"},
		{"song type:video", "1:song four.avi"},
		{"song type:audio ext:mp3 bitrate>128", "1:song five.MP3, 1:song two.mp3"},
		{"song type:image", ""},
	} {
		got := search(x, mustParse(t, c.q), 0)
		// Sort the expectation the way names does.
		want := strings.Split(c.want, ", ")
		slices.Sort(want)
		if g := names(got); g != strings.Join(want, ", ") && !(c.want == "" && g == "") {
			t.Errorf("search %q = %q, want %q", c.q, g, c.want)
		}
	}
}

func TestDuplicateAdd(t *testing.T) {
	x := New()
	f := file(1, "song.mp3")
	id, ok := x.Add(1, f)
	if !ok {
		t.Fatal("first Add refused")
	}
	if _, ok := x.Add(1, f); ok {
		t.Fatal("second Add of the same (owner, content ID, name) accepted")
	}
	renamed := *f
	renamed.Name = "song (copy).mp3"
	if _, ok := x.Add(1, &renamed); !ok {
		t.Fatal("same content under another name refused")
	}
	other := *f
	other.ContentID = cid(2)
	if _, ok := x.Add(1, &other); !ok {
		t.Fatal("same name with another content ID refused")
	}
	if id2, ok := x.Add(2, f); !ok || id2 == id {
		t.Fatalf("same file from another owner: %d, %v", id2, ok)
	}
	if x.Len() != 4 {
		t.Fatalf("Len %d, want 4", x.Len())
	}
	if hits := search(x, mustParse(t, "song"), 0); len(hits) != 4 {
		t.Fatalf("search found %d files, want 4 (a duplicate add must not index twice)", len(hits))
	}
	for _, bad := range []proto.FileEntry{
		{ContentID: cid(9)},
		{ContentID: cid(9), Name: strings.Repeat("n", proto.MaxNameLen+1)},
		{ContentID: cid(9), Name: "ok", Album: strings.Repeat("a", proto.MaxTagLen+1)},
	} {
		if _, ok := x.Add(1, &bad); ok {
			t.Errorf("Add accepted name of %d bytes, album of %d", len(bad.Name), len(bad.Album))
		}
	}
}

func TestLimitAndStop(t *testing.T) {
	x := New()
	for i := range 500 {
		x.Add(uint32(i%7), file(i, fmt.Sprintf("common track %d.mp3", i)))
	}
	q := mustParse(t, "common track")
	for _, limit := range []int{1, 10, 100, 499, 500, 501} {
		if got := len(search(x, q, limit)); got != min(limit, 500) {
			t.Errorf("limit %d: %d results", limit, got)
		}
	}
	if got := len(search(x, q, 0)); got != 500 {
		t.Errorf("limit 0: %d results, want all 500", got)
	}
	if got := len(search(x, mustParse(t, "common track size>250000"), 100)); got != 100 {
		t.Errorf("limit with filter: %d results, want 100", got)
	}
	calls := 0
	x.Search(q, 0, func(uint32, proto.FileEntry) bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Errorf("fn returned false on call 3, but was called %d times", calls)
	}
}

func TestDocIDReuse(t *testing.T) {
	x := New()
	for i := range 10 {
		if id, _ := x.Add(1, file(i, fmt.Sprintf("old %d.mp3", i))); id != DocID(i) {
			t.Fatalf("file %d got ID %d", i, id)
		}
	}
	x.Remove(1, cid(3), "old 3.mp3")
	x.Remove(1, cid(7), "old 7.mp3")
	a, _ := x.Add(2, file(100, "new a.mp3"))
	b, _ := x.Add(2, file(101, "new b.mp3"))
	c, _ := x.Add(2, file(102, "new c.mp3"))
	if got := []DocID{a, b, c}; !slices.Equal(got, []DocID{7, 3, 10}) {
		t.Fatalf("new files got IDs %v, want the freed 7 and 3, then 10", got)
	}
	if got, want := names(search(x, mustParse(t, "old"), 0)), "1:old 0.mp3, 1:old 1.mp3, 1:old 2.mp3, 1:old 4.mp3, 1:old 5.mp3, 1:old 6.mp3, 1:old 8.mp3, 1:old 9.mp3"; got != want {
		t.Errorf("old: %q, want %q", got, want)
	}
	if got, want := names(search(x, mustParse(t, "new mp3"), 0)), "2:new a.mp3, 2:new b.mp3, 2:new c.mp3"; got != want {
		t.Errorf("new: %q, want %q", got, want)
	}
	// Results come in DocID order, reused IDs included.
	var order []string
	x.Search(mustParse(t, "mp3"), 0, func(_ uint32, e proto.FileEntry) bool { order = append(order, e.Name); return true })
	if order[3] != "new b.mp3" || order[7] != "new a.mp3" || order[10] != "new c.mp3" {
		t.Errorf("results out of DocID order: %q", order)
	}
}

func TestRemoveOwner(t *testing.T) {
	x := New()
	files := corpus.Generate(3, 6000)
	for i := range files {
		x.Add(uint32(i%3), &files[i])
	}
	terms, n := x.Terms(), x.Len()
	n1 := x.OwnerLen(1)
	if got := x.RemoveOwner(1); got != n1 || n1 == 0 {
		t.Fatalf("RemoveOwner(1) = %d, want %d", got, n1)
	}
	if x.RemoveOwner(1) != 0 || x.OwnerLen(1) != 0 {
		t.Fatal("owner 1 still has files")
	}
	if x.Len() != n-n1 {
		t.Fatalf("Len %d, want %d", x.Len(), n-n1)
	}
	for _, s := range corpus.Queries(4, 200) {
		for _, h := range search(x, mustParse(t, s), 0) {
			if h.owner == 1 {
				t.Fatalf("query %q found %q of removed owner 1", s, h.name)
			}
		}
	}
	if x.Terms() >= terms {
		t.Errorf("Terms %d after removing a third of the files, was %d: words only owner 1 had should be gone", x.Terms(), terms)
	}
	x.RemoveOwner(0)
	x.RemoveOwner(2)
	if x.Len() != 0 || x.Terms() != 0 || len(x.owners) != 0 {
		t.Fatalf("empty index: Len %d, Terms %d, owners %d", x.Len(), x.Terms(), len(x.owners))
	}
	for _, s := range x.slots {
		if s != 0 {
			t.Fatal("empty index has a used slot in its duplicate table")
		}
	}
}

func TestCompaction(t *testing.T) {
	x := New()
	files := corpus.Generate(5, 60000) // about 5 MB of text
	for i := range files {
		x.Add(uint32(i%10), &files[i])
	}
	before := x.text.bytes()
	for owner := range uint32(8) {
		x.RemoveOwner(owner)
	}
	if x.text.dead != 0 || x.text.bytes() >= before {
		t.Fatalf("text arena not compacted: %d of %d bytes dead, %d bytes held (was %d)", x.text.dead, x.text.used, x.text.bytes(), before)
	}
	for id := range uint32(x.docs.n) {
		owner, e, ok := x.Get(DocID(id))
		if !ok {
			continue
		}
		var want *proto.FileEntry
		for i := int(owner); i < len(files); i += 10 {
			if files[i].ContentID == e.ContentID && files[i].Name == e.Name {
				want = &files[i]
			}
		}
		if want == nil || *want != e {
			t.Fatalf("after compaction doc %d is %+v", id, e)
		}
	}
}

// TestSearchMatchesBruteForce compares Search with Query.Match over every
// live file, through random adds, removes and departures of owners, with
// enough files per word that common words become bitmaps and go back.
func TestSearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	files := corpus.Generate(11, 20000)
	var queries []*Query
	filters := []string{"", "", "", " size>5MB", " bitrate>=192", " ext:mp3", " type:audio", " duration<3m", " freq=44100 ext:mp3 ext:ogg", " type:video type:image"}
	for _, s := range corpus.Queries(12, 300) {
		queries = append(queries, mustParse(t, s+filters[r.IntN(len(filters))]))
	}
	for _, s := range []string{"the", "mp3", "love the", "of the mp3", "remix love the mp3"} {
		queries = append(queries, mustParse(t, s))
	}
	type key struct {
		owner uint32
		cid   proto.ContentID
		name  string
	}
	x := New()
	live := map[key]int{} // → index in files
	// Whether query i matches file j, worked out by Query.Match once.
	matches := make([][]int8, len(queries))
	for i := range matches {
		matches[i] = make([]int8, len(files))
	}
	match := func(qi, fi int) bool {
		if matches[qi][fi] == 0 {
			matches[qi][fi] = 2
			if queries[qi].Match(&files[fi]) {
				matches[qi][fi] = 1
			}
		}
		return matches[qi][fi] == 1
	}
	modes := map[int]int{}
	check := func(round int) {
		t.Helper()
		for _, q := range queries {
			var it intersection
			for _, w := range q.words {
				if tid, ok := x.dict.lookup(w); ok {
					it.ps = append(it.ps, &x.dict.posts[tid])
				}
			}
			if len(it.ps) == len(q.words) {
				it.start()
				modes[it.how]++
			}
		}
		if x.Len() != len(live) {
			t.Fatalf("round %d: Len %d, want %d", round, x.Len(), len(live))
		}
		for qi, q := range queries {
			var want []string
			for k, fi := range live {
				if match(qi, fi) {
					want = append(want, fmt.Sprintf("%d:%s:%s", k.owner, k.cid.Short(), k.name))
				}
			}
			var got []string
			x.Search(q, 0, func(owner uint32, e proto.FileEntry) bool {
				got = append(got, fmt.Sprintf("%d:%s:%s", owner, e.ContentID.Short(), e.Name))
				return true
			})
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: query %q: Search found %d files, brute force %d\nsearch only: %q\nbrute only: %q",
					round, q, len(got), len(want), diff(got, want), diff(want, got))
			}
		}
	}
	next := 0
	for round := range 12 {
		// Add a batch, some files to several owners.
		for range 2500 {
			fi := next % len(files)
			e := &files[fi]
			next++
			owner := uint32(r.IntN(40))
			_, ok := x.Add(owner, e)
			k := key{owner, e.ContentID, e.Name}
			if _, dup := live[k]; ok == dup {
				t.Fatalf("Add(%d, %q) = %v, but present before: %v", owner, e.Name, ok, dup)
			}
			live[k] = fi
		}
		check(round)
		// Remove some files one by one, and a few owners entirely.
		n := 0
		for k := range live {
			if n++; n > 700 {
				break
			}
			if !x.Remove(k.owner, k.cid, k.name) {
				t.Fatalf("Remove(%d, %q) found nothing", k.owner, k.name)
			}
			delete(live, k)
		}
		for range 3 {
			owner := uint32(r.IntN(40))
			want := 0
			for k := range live {
				if k.owner == owner {
					delete(live, k)
					want++
				}
			}
			if got := x.RemoveOwner(owner); got != want {
				t.Fatalf("RemoveOwner(%d) = %d, want %d", owner, got, want)
			}
		}
		check(round)
	}
	if modes[walkRarest] == 0 || modes[mergeTwo] == 0 || modes[andBitmaps] == 0 {
		t.Errorf("queries did not use every way of intersecting: %v", modes)
	}
}

func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func TestGallop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		d := make([]uint32, r.IntN(300))
		for i := range d {
			d[i] = r.Uint32N(1000)
		}
		slices.Sort(d)
		lo := 0
		if len(d) > 0 {
			lo = r.IntN(len(d) + 1)
		}
		x := r.Uint32N(1100)
		want := lo
		for want < len(d) && d[want] < x {
			want++
		}
		if got := gallop(d, lo, x); got != want {
			t.Fatalf("gallop(%v, %d, %d) = %d, want %d", d, lo, x, got, want)
		}
	}
}

func TestBytes(t *testing.T) {
	x := New()
	empty := x.Bytes()
	files := corpus.Generate(6, 5000)
	for i := range files {
		x.Add(uint32(i/1000), &files[i])
	}
	if b := x.Bytes(); b <= empty || b > 10_000_000 {
		t.Fatalf("Bytes() = %d for 5,000 files (empty: %d)", b, empty)
	}
}

func TestPostingForms(t *testing.T) {
	const space = 100_000
	var p posting
	r := rand.New(rand.NewPCG(5, 6))
	in := map[uint32]bool{}
	for len(in) < space/64 { // past the 1/128 threshold: a bitmap
		id := r.Uint32N(space)
		if !in[id] {
			in[id] = true
			p.add(id, space)
		}
	}
	if !p.bitmap || int(p.n) != len(in) {
		t.Fatalf("after %d adds: bitmap %v, n %d", len(in), p.bitmap, p.n)
	}
	for id := range uint32(space) {
		if p.has(id) != in[id] {
			t.Fatalf("has(%d) = %v, want %v", id, p.has(id), in[id])
		}
	}
	var all []uint32
	for id := range in {
		all = append(all, id)
	}
	slices.Sort(all)
	p.remove(all[:len(all)-space/512], space) // below 1/256: a list again
	if p.bitmap || int(p.n) != space/512 || !slices.Equal(p.d, all[len(all)-space/512:]) {
		t.Fatalf("after removals: bitmap %v, n %d, %d IDs", p.bitmap, p.n, len(p.d))
	}
	p.remove(all[len(all)-space/512:], space)
	if p.n != 0 || len(p.d) != 0 {
		t.Fatalf("emptied posting has n %d, %d IDs", p.n, len(p.d))
	}
}
