package shares

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// past is the modification time given to test files: old enough that their
// hashes are trusted at once (see racyWindow).
var past = time.Now().Add(-time.Hour).Truncate(time.Second)

// writeFile writes b to path (creating folders) with modification time mt.
func writeFile(t testing.TB, path string, b []byte, mt time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// cidOf computes a content ID independently of the Library.
func cidOf(b []byte) proto.ContentID {
	var pieces []proto.PieceHash
	for off := 0; off < len(b); off += proto.PieceSize {
		pieces = append(pieces, proto.HashPiece(b[off:min(off+proto.PieceSize, len(b))]))
	}
	return proto.ContentIDOf(uint64(len(b)), pieces)
}

func mp3Bytes(t testing.TB, o mediagen.MP3Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := mediagen.WriteMP3(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(t testing.TB, cfg Config) *Library {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func scan(t testing.TB, l *Library) Diff {
	t.Helper()
	d, err := l.Scan(context.Background(), nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return d
}

func names(es []proto.FileEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name)
	}
	return n
}

func find(es []proto.FileEntry, name string) (proto.FileEntry, bool) {
	for _, e := range es {
		if e.Name == name {
			return e, true
		}
	}
	return proto.FileEntry{}, false
}

func TestScanTree(t *testing.T) {
	dir := t.TempDir()
	big := randomBytes(1, 2*proto.PieceSize+5)
	song := mp3Bytes(t, mediagen.MP3Options{Duration: 200 * time.Second, Bitrate: 192, InfoHeader: true,
		Artist: "Sigur Rós", Title: "Hoppípolla", Album: "Takk..."})
	files := map[string][]byte{
		"a.txt":                          []byte("hello"),
		"music/Hoppípolla.mp3":           song,
		"music/deep/er/big.bin":          big,
		"music/.hidden.mp3":              song,
		".cache/thing.txt":               []byte("hidden folder"),
		"music/Incoming.mp3.strata-part": song[:1000],
		"empty.txt":                      nil,
		"bad\x01name.txt":                []byte("control character"),
		"bad\xffutf8.txt":                []byte("invalid UTF-8"),
		"broken.mp3":                     []byte("not really an mp3"),
	}
	for p, b := range files {
		writeFile(t, filepath.Join(dir, p), b, past)
	}
	l := open(t, Config{Dirs: []string{dir}, StateDir: t.TempDir()})

	d := scan(t, l)
	want := []string{"Hoppípolla.mp3", "a.txt", "big.bin", "broken.mp3"}
	if got := names(l.Files()); !slices.Equal(got, want) {
		t.Fatalf("Files = %q, want %q", got, want)
	}
	if !slices.Equal(names(d.Added), want) || len(d.Removed) != 0 {
		t.Errorf("first scan diff = +%q -%q, want everything added", names(d.Added), names(d.Removed))
	}
	if l.Len() != 4 {
		t.Errorf("Len = %d", l.Len())
	}
	s := l.Stats()
	if want := (SkipCounts{Partial: 1, InvalidName: 2, Empty: 1}); s.Skipped != want {
		t.Errorf("skipped %+v, want %+v", s.Skipped, want)
	}
	if s.Files != 4 || s.HashedFiles != 4 || s.Bytes != uint64(5+len(song)+len(big)+17) || s.HashedBytes != int64(s.Bytes) {
		t.Errorf("stats %+v", s)
	}

	e, _ := find(l.Files(), "big.bin")
	if e.ContentID != cidOf(big) || e.Size != uint64(len(big)) || e.Media != proto.MediaOther {
		t.Errorf("big.bin entry %+v, want content ID %s", e, cidOf(big).Short())
	}
	m, _ := find(l.Files(), "Hoppípolla.mp3")
	if m.ContentID != cidOf(song) || m.Media != proto.MediaAudio || m.Bitrate != 192 || m.SampleRate != 44100 ||
		m.Duration != 200 || m.Artist != "Sigur Rós" || m.Title != "Hoppípolla" || m.Album != "Takk..." {
		t.Errorf("mp3 entry %+v", m)
	}
	if b, _ := find(l.Files(), "broken.mp3"); b.Media != proto.MediaAudio || b.Bitrate != 0 {
		t.Errorf("unparseable mp3 entry %+v", b)
	}
	for _, e := range l.Files() {
		if err := proto.ValidateEntry(&e); err != nil {
			t.Errorf("announced entry fails validation: %v", err)
		}
	}

	path, size, pieces, ok := l.Lookup(cidOf(big))
	if !ok || path != filepath.Join(dir, "music/deep/er/big.bin") || size != uint64(len(big)) {
		t.Fatalf("Lookup(big) = %q %d %v", path, size, ok)
	}
	if err := proto.VerifyPieces(cidOf(big), size, pieces); err != nil {
		t.Errorf("Lookup pieces: %v", err)
	}
	f, size, _, err := l.OpenContent(cidOf(song))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, song) {
		t.Errorf("OpenContent read %d bytes, err %v", len(got), err)
	}
}

func TestLookupRefuses(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	data := []byte("shared content")
	writeFile(t, filepath.Join(dir, "f.txt"), data, past)
	writeFile(t, filepath.Join(dir, "g.txt"), []byte("soon deleted"), past)
	writeFile(t, filepath.Join(outside, "secret.txt"), data, past)
	l := open(t, Config{Dirs: []string{dir}})

	if _, _, _, ok := l.Lookup(cidOf(data)); ok {
		t.Error("Lookup before the first scan found something")
	}
	scan(t, l)
	for _, cid := range []proto.ContentID{{}, {1, 2, 3}, cidOf([]byte("never shared"))} {
		if _, _, _, ok := l.Lookup(cid); ok {
			t.Errorf("Lookup(%s) found a file", cid.Short())
		}
		if _, _, _, err := l.OpenContent(cid); err == nil {
			t.Errorf("OpenContent(%s) opened a file", cid.Short())
		}
	}

	// Deleted since the scan.
	if err := os.Remove(filepath.Join(dir, "g.txt")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := l.Lookup(cidOf([]byte("soon deleted"))); ok {
		t.Error("Lookup returned a deleted file")
	}

	// Replaced since the scan by a link to a file outside with the same bytes.
	if _, _, _, ok := l.Lookup(cidOf(data)); !ok {
		t.Fatal("shared file not found")
	}
	if err := os.Remove(filepath.Join(dir, "f.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "f.txt")); err != nil {
		t.Fatal(err)
	}
	if p, _, _, ok := l.Lookup(cidOf(data)); ok {
		t.Errorf("Lookup followed a link out of the share folder to %q", p)
	}
	if f, _, _, err := l.OpenContent(cidOf(data)); err == nil {
		f.Close()
		t.Error("OpenContent followed a link out of the share folder")
	}
}

func TestSymlinks(t *testing.T) {
	base := t.TempDir()
	dir, outside := filepath.Join(base, "share"), filepath.Join(base, "outside")
	secret := []byte("outside the share folder")
	inside := []byte("inside, reached by a link")
	writeFile(t, filepath.Join(outside, "secret.txt"), secret, past)
	writeFile(t, filepath.Join(dir, ".private", "real.txt"), inside, past)
	for link, target := range map[string]string{
		"abs-out.txt":     filepath.Join(outside, "secret.txt"),
		"rel-out.txt":     "../outside/secret.txt",
		"sneaky.txt":      ".private/../../outside/secret.txt",
		"dirlink":         "../outside",
		"broken.txt":      "nowhere.txt",
		"linked-in.txt":   ".private/real.txt",
		".hidden-out.txt": "../outside/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	// The share folder itself may be reached through a link.
	linkedShare := filepath.Join(base, "share-link")
	if err := os.Symlink(dir, linkedShare); err != nil {
		t.Fatal(err)
	}
	l := open(t, Config{Dirs: []string{linkedShare}})
	scan(t, l)

	if got := names(l.Files()); !slices.Equal(got, []string{"linked-in.txt"}) {
		t.Errorf("Files = %q, want only the link that stays inside", got)
	}
	if _, _, _, ok := l.Lookup(cidOf(secret)); ok {
		t.Error("file outside the share folder is reachable by Lookup")
	}
	if p, _, _, ok := l.Lookup(cidOf(inside)); !ok || p != filepath.Join(dir, "linked-in.txt") {
		t.Errorf("Lookup(linked-in) = %q %v", p, ok)
	}
	if s := l.Stats().Skipped.Symlink; s != 5 {
		t.Errorf("skipped %d links, want 5 (abs-out, rel-out, sneaky, dirlink, broken)", s)
	}
}

func TestIncrementalDiff(t *testing.T) {
	dir := t.TempDir()
	a, b := randomBytes(2, 1000), randomBytes(3, proto.PieceSize+1)
	writeFile(t, filepath.Join(dir, "a.bin"), a, past)
	writeFile(t, filepath.Join(dir, "sub", "b.bin"), b, past)
	l := open(t, Config{Dirs: []string{dir}, StateDir: t.TempDir()})
	scan(t, l)

	step := func(name string, change func(), added, removed []string, hashed int64) {
		t.Helper()
		before := l.Stats().HashedBytes
		change()
		d := scan(t, l)
		if !slices.Equal(names(d.Added), added) || !slices.Equal(names(d.Removed), removed) {
			t.Errorf("%s: diff +%q -%q, want +%q -%q", name, names(d.Added), names(d.Removed), added, removed)
		}
		if got := l.Stats().HashedBytes - before; got != hashed {
			t.Errorf("%s: hashed %d bytes, want %d", name, got, hashed)
		}
	}

	c := []byte("a new file")
	step("nothing", func() {}, nil, nil, 0)
	step("add", func() { writeFile(t, filepath.Join(dir, "c.txt"), c, past) }, []string{"c.txt"}, nil, int64(len(c)))
	step("remove", func() { os.Remove(filepath.Join(dir, "c.txt")) }, nil, []string{"c.txt"}, 0)

	a2 := randomBytes(4, 1000) // same size, new content and time
	step("modify", func() { writeFile(t, filepath.Join(dir, "a.bin"), a2, past.Add(time.Second)) },
		[]string{"a.bin"}, []string{"a.bin"}, int64(len(a2)))
	if e, _ := find(l.Files(), "a.bin"); e.ContentID != cidOf(a2) {
		t.Error("modified file keeps its old content ID")
	}
	if _, _, _, ok := l.Lookup(cidOf(a)); ok {
		t.Error("old content of a modified file still found")
	}

	step("rename", func() {
		if err := os.Rename(filepath.Join(dir, "sub", "b.bin"), filepath.Join(dir, "b-renamed.bin")); err != nil {
			t.Fatal(err)
		}
	}, []string{"b-renamed.bin"}, []string{"b.bin"}, 0)
	if e, _ := find(l.Files(), "b-renamed.bin"); e.ContentID != cidOf(b) {
		t.Error("renamed file has a new content ID")
	}

	// A second copy under the same name is announced once; removing one
	// copy withdraws nothing.
	step("copy", func() { writeFile(t, filepath.Join(dir, "sub", "a.bin"), a2, past) }, nil, nil, int64(len(a2)))
	if s := l.Stats(); s.Files != 3 || s.Entries != 2 {
		t.Errorf("stats %+v, want 3 files, 2 entries", s)
	}
	step("remove one copy", func() { os.Remove(filepath.Join(dir, "a.bin")) }, nil, nil, 0)
	if p, _, _, ok := l.Lookup(cidOf(a2)); !ok || p != filepath.Join(dir, "sub", "a.bin") {
		t.Errorf("Lookup after removing one copy = %q %v", p, ok)
	}
}

// A rescan, and a scan by a new Library over the same state folder, hash
// nothing when no file changed.
func TestRescanHashesNothing(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	var total int64
	for i := range 20 {
		b := randomBytes(uint64(i), 1000+i*50_000)
		total += int64(len(b))
		writeFile(t, filepath.Join(dir, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d.bin", i)), b, past)
	}
	l := open(t, Config{Dirs: []string{dir}, StateDir: state})
	scan(t, l)
	if got := l.Stats().HashedBytes; got != total {
		t.Fatalf("first scan hashed %d bytes, want %d", got, total)
	}
	if d := scan(t, l); !d.Empty() || l.Stats().HashedBytes != total {
		t.Fatalf("rescan: diff %v, hashed %d more bytes", d, l.Stats().HashedBytes-total)
	}
	first := l.Files()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, Config{Dirs: []string{dir}, StateDir: state})
	d := scan(t, l2)
	if got := l2.Stats().HashedBytes; got != 0 {
		t.Errorf("scan with a loaded cache hashed %d bytes", got)
	}
	if !slices.EqualFunc(d.Added, first, func(a, b proto.FileEntry) bool { return a == b }) {
		t.Error("entries from the cache differ from the hashed ones")
	}
}

// A file modified moments before it was hashed is hashed again by the next
// scan, since a second change within the timestamp granularity would keep
// its modification time.
func TestRacyFileRehashed(t *testing.T) {
	dir := t.TempDir()
	mt := time.Now().Truncate(time.Second)
	clock := mt.Add(time.Second) // one second after the change: racy
	writeFile(t, filepath.Join(dir, "f.bin"), []byte("fresh"), mt)
	l := open(t, Config{Dirs: []string{dir}, now: func() time.Time { return clock }})
	scan(t, l)
	scan(t, l)
	if got := l.Stats().HashedFiles; got != 2 {
		t.Fatalf("hashed %d times, want 2 (racy file hashed again)", got)
	}
	clock = mt.Add(time.Minute)
	scan(t, l) // hashed at mt+1min: now trusted
	scan(t, l)
	if got := l.Stats().HashedFiles; got != 3 {
		t.Fatalf("hashed %d times, want 3", got)
	}
}

func TestCacheCorruptionRecovered(t *testing.T) {
	dir := t.TempDir()
	var total int64
	for i := range 5 {
		b := randomBytes(uint64(i), 100_000*(i+1))
		total += int64(len(b))
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d.bin", i)), b, past)
	}
	good := t.TempDir()
	l := open(t, Config{Dirs: []string{dir}, StateDir: good})
	scan(t, l)
	l.Close()
	cache, err := os.ReadFile(filepath.Join(good, CacheFile))
	if err != nil {
		t.Fatal(err)
	}

	flip := func(i int) []byte { b := bytes.Clone(cache); b[i] ^= 0x40; return b }
	hugeCount := bytes.Clone(cache)
	copy(hugeCount[len(cacheMagic)+4:], []byte{0xFF, 0xFF, 0xFF, 0xFF})
	for name, b := range map[string][]byte{
		"empty":            {},
		"truncated":        cache[:len(cache)/2],
		"truncated header": cache[:10],
		"flipped in entry": flip(60),
		"flipped in piece": flip(len(cache) - 40),
		"flipped checksum": flip(len(cache) - 1),
		"huge count":       hugeCount,
		"garbage":          randomBytes(9, 5000),
		"trailing bytes":   append(bytes.Clone(cache), 0),
		"other version":    append(append([]byte(cacheMagic), 0, 0, 0, 9), cache[len(cacheMagic)+4:]...),
	} {
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			if err := os.WriteFile(filepath.Join(state, CacheFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(state, CacheFile+".tmp123"), []byte("left by a crash"), past)
			l := open(t, Config{Dirs: []string{dir}, StateDir: state})
			if got := l.Stats().CacheDiscards; got != 1 {
				t.Errorf("CacheDiscards = %d, want 1", got)
			}
			scan(t, l)
			if got := l.Stats().HashedBytes; got != total {
				t.Errorf("hashed %d bytes after discarding the cache, want %d", got, total)
			}
			if _, err := os.Stat(filepath.Join(state, CacheFile+".tmp123")); !os.IsNotExist(err) {
				t.Error("stale temporary file not removed")
			}
			l.Close()
			// The rebuilt cache is good again.
			l2 := open(t, Config{Dirs: []string{dir}, StateDir: state})
			scan(t, l2)
			if s := l2.Stats(); s.CacheDiscards != 0 || s.HashedBytes != 0 {
				t.Errorf("rebuilt cache: %+v", s)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		state := t.TempDir()
		if err := os.Mkdir(filepath.Join(state, CacheFile), 0o700); err != nil { // a folder where the file should be
			t.Fatal(err)
		}
		l, err := Open(Config{Dirs: []string{dir}, StateDir: state, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if l.Stats().CacheDiscards != 1 {
			t.Error("unreadable cache not counted")
		}
		if _, err := l.Scan(context.Background(), nil); err != nil {
			t.Fatalf("Scan must not fail when the cache cannot be saved: %v", err)
		}
		if s := l.Stats(); s.CacheSaveErrors != 1 || s.Files != 5 {
			t.Errorf("stats %+v", s)
		}
		if err := l.Close(); err == nil || !strings.Contains(err.Error(), "state folder") {
			t.Errorf("Close: err = %v, want the save failure", err)
		}
	})
}

// Entries for vanished files are dropped from the cache when it is saved.
func TestCacheDropsVanished(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "keep.txt"), []byte("keep"), past)
	writeFile(t, filepath.Join(dir, "gone.txt"), []byte("gone"), past)
	l := open(t, Config{Dirs: []string{dir}, StateDir: state})
	scan(t, l)
	os.Remove(filepath.Join(dir, "gone.txt"))
	scan(t, l)
	recs, err := loadCache(filepath.Join(state, CacheFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[filepath.Join(l.roots[0].path, "keep.txt")] == nil {
		t.Errorf("cache holds %d entries: %v", len(recs), recs)
	}
}

// A share folder that goes away withdraws its files but keeps their hashes
// for when it comes back.
func TestUnavailableFolder(t *testing.T) {
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "one"), filepath.Join(base, "two")
	writeFile(t, filepath.Join(d1, "a.txt"), []byte("one"), past)
	writeFile(t, filepath.Join(d2, "b.txt"), []byte("two"), past)
	l := open(t, Config{Dirs: []string{d1, d2}, StateDir: filepath.Join(base, "state")})
	scan(t, l)
	if err := os.Rename(d2, d2+"-unmounted"); err != nil {
		t.Fatal(err)
	}
	if d := scan(t, l); !slices.Equal(names(d.Removed), []string{"b.txt"}) || len(d.Added) != 0 {
		t.Errorf("diff +%q -%q", names(d.Added), names(d.Removed))
	}
	if err := os.Rename(d2+"-unmounted", d2); err != nil {
		t.Fatal(err)
	}
	hashed := l.Stats().HashedBytes
	if d := scan(t, l); !slices.Equal(names(d.Added), []string{"b.txt"}) {
		t.Errorf("diff +%q -%q", names(d.Added), names(d.Removed))
	}
	if l.Stats().HashedBytes != hashed {
		t.Error("files of a returning share folder hashed again")
	}
}

func TestAddFile(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	l := open(t, Config{Dirs: []string{dir}, StateDir: t.TempDir()})
	scan(t, l)

	song := mp3Bytes(t, mediagen.MP3Options{Duration: 30 * time.Second, Title: "Downloaded", Noise: true, Seed: 5})
	part := filepath.Join(dir, "in", "Song.mp3"+PartSuffix)
	writeFile(t, part, song, past)
	if d := scan(t, l); !d.Empty() {
		t.Fatalf("partial download announced: %+v", d)
	}
	final := filepath.Join(dir, "in", "Song.mp3")
	if err := os.Rename(part, final); err != nil {
		t.Fatal(err)
	}
	before := l.Stats().HashedBytes
	d, err := l.AddFile(context.Background(), final, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0].ContentID != cidOf(song) || d.Added[0].Title != "Downloaded" || d.Added[0].Duration != 30 {
		t.Fatalf("AddFile diff %+v", d)
	}
	if l.Stats().HashedBytes-before != int64(len(song)) {
		t.Error("AddFile without pieces did not hash the file")
	}

	// With the pieces the downloader verified: no hashing.
	other2 := randomBytes(7, 3*proto.PieceSize)
	var pieces []proto.PieceHash
	for off := 0; off < len(other2); off += proto.PieceSize {
		pieces = append(pieces, proto.HashPiece(other2[off:off+proto.PieceSize]))
	}
	p2 := filepath.Join(dir, "in", "data.bin")
	writeFile(t, p2, other2, past)
	before = l.Stats().HashedBytes
	d, err = l.AddFile(context.Background(), p2, pieces)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0].ContentID != cidOf(other2) || l.Stats().HashedBytes != before {
		t.Errorf("AddFile with pieces: diff %+v, hashed %d", d, l.Stats().HashedBytes-before)
	}
	if _, _, _, ok := l.Lookup(cidOf(other2)); !ok {
		t.Error("added file not found by Lookup")
	}
	// A scan afterwards agrees and hashes nothing.
	before = l.Stats().HashedBytes
	if d := scan(t, l); !d.Empty() || l.Stats().HashedBytes != before {
		t.Errorf("scan after AddFile: %+v, hashed %d", d, l.Stats().HashedBytes-before)
	}

	writeFile(t, filepath.Join(other, "x.txt"), []byte("x"), past)
	writeFile(t, filepath.Join(dir, ".hidden", "y.txt"), []byte("y"), past)
	writeFile(t, filepath.Join(dir, "z.txt"), []byte("z"), past)
	writeFile(t, filepath.Join(dir, "e.txt"), nil, past)
	for _, tc := range []struct {
		path   string
		pieces []proto.PieceHash
		want   string
	}{
		{filepath.Join(other, "x.txt"), nil, "not inside a share folder"},
		{filepath.Join(dir, ".hidden", "y.txt"), nil, "hidden"},
		{filepath.Join(dir, "in", "Song.mp3"+PartSuffix), nil, "partial"},
		{filepath.Join(dir, "z.txt"), pieces, "piece hashes"},
		{filepath.Join(dir, "missing.txt"), nil, "no such file"},
		{filepath.Join(dir, "e.txt"), nil, "empty"},
		{dir, nil, "not inside a share folder"},
	} {
		if _, err := l.AddFile(context.Background(), tc.path, tc.pieces); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddFile(%q): err = %v, want one mentioning %q", tc.path, err, tc.want)
		}
	}
}

func TestProgress(t *testing.T) {
	dir := t.TempDir()
	var total int64
	for i := range 30 {
		b := randomBytes(uint64(i), 10_000+i*30_000)
		total += int64(len(b))
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d.bin", i)), b, past)
	}
	// A fake clock that moves 7 ms each time it is read.
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(7 * time.Millisecond)
		return clock
	}
	l := open(t, Config{Dirs: []string{dir}, HashWorkers: 1, ProgressInterval: 50 * time.Millisecond, now: now})

	var calls []Progress
	var at []time.Time
	if _, err := l.Scan(context.Background(), func(p Progress) {
		calls = append(calls, p)
		mu.Lock()
		at = append(at, clock)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if len(calls) < 3 {
		t.Fatalf("progress called %d times", len(calls))
	}
	for i := 1; i < len(at)-1; i++ { // all but the final call are spaced by the interval
		if gap := at[i].Sub(at[i-1]); gap < 50*time.Millisecond {
			t.Errorf("calls %d and %d only %v apart", i-1, i, gap)
		}
	}
	last := calls[len(calls)-1]
	if last.FilesDone != 30 || last.FilesTotal != 30 || last.BytesDone != total || last.BytesTotal != total || last.Current != "" {
		t.Errorf("final progress %+v, want 30 files and %d bytes done", last, total)
	}
	for _, p := range calls {
		if p.FilesDone > p.FilesTotal || p.BytesDone > p.BytesTotal {
			t.Errorf("progress past its totals: %+v", p)
		}
	}
}

func TestScanCancelled(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), randomBytes(uint64(i), proto.PieceSize*2), past)
	}
	// A fake clock moving 50 ms per read, so that every update is reported.
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(50 * time.Millisecond)
		return clock
	}
	l := open(t, Config{Dirs: []string{dir}, HashWorkers: 1, ProgressInterval: 10 * time.Millisecond, now: now})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := l.Scan(ctx, func(p Progress) {
		if p.FilesDone == 3 {
			cancel() // while hashing
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan err = %v, want context.Canceled", err)
	}
	if l.Len() != 0 {
		t.Error("an interrupted scan published files")
	}
	hashed := l.Stats().HashedBytes
	scan(t, l)
	if l.Len() != 10 {
		t.Errorf("Len = %d after a full scan", l.Len())
	}
	if again := l.Stats().HashedBytes - hashed; again >= 10*2*proto.PieceSize {
		t.Errorf("work of the interrupted scan not kept: hashed %d bytes again", again)
	}
}

// Files and Lookup may be called while a scan runs (run with -race).
func TestConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), randomBytes(uint64(i), 50_000), past)
	}
	l := open(t, Config{Dirs: []string{dir}})
	scan(t, l)
	cids := l.Files()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, e := range l.Files() {
				l.Lookup(e.ContentID)
			}
			_ = l.Stats()
		}
	})
	for i := range 5 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("new%d", i)), randomBytes(uint64(100+i), 50_000), past)
		scan(t, l)
	}
	cancel()
	wg.Wait()
	if l.Len() != len(cids)+5 {
		t.Errorf("Len = %d", l.Len())
	}
}

func TestConfigErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file.txt")
	writeFile(t, file, []byte("x"), past)
	sub := filepath.Join(base, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Dirs: []string{filepath.Join(base, "missing")}}, "create it or remove it"},
		{Config{Dirs: []string{file}}, "is a file, not a folder"},
		{Config{Dirs: []string{base, sub}}, "is inside share folder"},
		{Config{Dirs: []string{sub, base}}, "is inside share folder"},
		{Config{Dirs: []string{sub, sub + "/"}}, "are the same folder"},
		{Config{Dirs: []string{" "}}, "empty share folder"},
		{Config{Dirs: []string{sub}, StateDir: file}, "is a file"},
	} {
		_, err := Open(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): err = %v, want one mentioning %q", tc.cfg.Dirs, err, tc.want)
		}
	}
	// The zero Config is valid and shares nothing.
	l, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := l.Scan(context.Background(), nil); err != nil || !d.Empty() {
		t.Errorf("zero Config scan: %v %v", d, err)
	}
	if c := DefaultConfig(); c.HashWorkers < 1 || c.ProgressInterval != 100*time.Millisecond || c.Logger == nil {
		t.Errorf("DefaultConfig %+v", c)
	}
}

// The state folder inside a share folder is not shared.
func TestStateDirInsideShare(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a"), past)
	l := open(t, Config{Dirs: []string{dir}, StateDir: filepath.Join(dir, "strata-state")})
	scan(t, l)
	scan(t, l) // the cache file now exists
	if got := names(l.Files()); !slices.Equal(got, []string{"a.txt"}) {
		t.Errorf("Files = %q", got)
	}
}

func TestCleanTag(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for in, want := range map[string]string{
		"  plain  ":                    "plain",
		"tab\there\x00nul":             "tabherenul",
		"bad\xffutf8":                  "badutf8",
		long:                           strings.Repeat("é", 64),
		strings.Repeat("a", 127) + "é": strings.Repeat("a", 127),
	} {
		got := cleanTag(in)
		if got != want {
			t.Errorf("cleanTag(%q) = %q, want %q", in, got, want)
		}
		e := proto.FileEntry{ContentID: proto.ContentID{1}, Name: "x", Artist: got}
		if err := proto.ValidateEntry(&e); err != nil {
			t.Errorf("cleanTag(%q) fails validation: %v", in, err)
		}
	}
}
