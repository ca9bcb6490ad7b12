// Package shares is what a leaf shares: it walks the share folders, gives
// every file a content ID (proto.ContentIDOf over its BLAKE3 piece hashes),
// reads media metadata, keeps a hash cache so unchanged files are never
// hashed twice, and answers an uploader's "which file is this content ID?"
// with files inside the share folders only.
//
// A Library is safe for concurrent use. Scan and AddFile run one at a time;
// Files, Len, Lookup, OpenContent and Stats may be called at any time,
// including during a scan, and see the result of the last completed one.
package shares

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/proto"
)

// PartSuffix ends the name of a file being downloaded. Such files are never
// shared; the downloader renames the file when it is complete and then
// calls AddFile.
const PartSuffix = ".strata-part"

// Diff is what changed between two states of a Library: entries to announce
// and entries to withdraw. A file whose content changed appears in both, with
// the old and the new content ID. Both lists are sorted by name, then
// content ID.
type Diff struct {
	Added, Removed []proto.FileEntry
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool { return len(d.Added) == 0 && len(d.Removed) == 0 }

// Stats are a Library's counters.
type Stats struct {
	// Files is the number of files indexed; Entries the number of distinct
	// (content ID, name) entries announced (copies of a file under one name
	// count once); Bytes the total size of the files.
	Files   int    `json:"files"`
	Entries int    `json:"entries"`
	Bytes   uint64 `json:"bytes"`

	// HashedFiles and HashedBytes count the hashing done since Open.
	HashedFiles int64 `json:"hashed_files"`
	HashedBytes int64 `json:"hashed_bytes"`

	// Skipped counts, for the last scan, the files not shared and why.
	Skipped SkipCounts `json:"skipped"`

	// CacheDiscards counts hash caches found corrupt or unreadable and
	// rebuilt; CacheSaveErrors counts failed saves.
	CacheDiscards   int64 `json:"cache_discards"`
	CacheSaveErrors int64 `json:"cache_save_errors"`
}

// SkipCounts counts files a scan left out, by reason.
type SkipCounts struct {
	Partial     int `json:"partial"`      // PartSuffix: downloads in progress
	InvalidName int `json:"invalid_name"` // names proto.ValidateEntry refuses
	Symlink     int `json:"symlink"`      // symbolic links leading out of the share folder, broken, or to folders
	Empty       int `json:"empty"`        // zero-byte files
	Special     int `json:"special"`      // devices, sockets, pipes
	Unreadable  int `json:"unreadable"`   // errors reading, or changed while being hashed
}

// Library is the set of files a leaf shares.
type Library struct {
	cfg       Config
	log       *zap.Logger
	roots     []shareRoot
	stateDir  string // resolved; "" without a cache on disk
	cachePath string

	scanMu sync.Mutex // serialises Scan, AddFile and Close; guards the fields below
	cache  map[string]*record
	dirty  bool // cache differs from the file
	closed bool

	mu      sync.RWMutex // guards idx and skipped
	idx     *index
	skipped SkipCounts

	hashedFiles, hashedBytes     atomic.Int64
	cacheDiscards, cacheSaveErrs atomic.Int64
}

// record is one indexed file. Records are immutable once published.
type record struct {
	path     string // absolute
	root     int    // index in Library.roots; -1 for a cache entry not yet seen by a scan
	rel      string // path inside the root
	size     uint64
	modNs    int64
	hashedAt int64 // clock (ns) when hashing began
	id       fileID
	entry    proto.FileEntry
	pieces   []proto.PieceHash
}

// fileID identifies a file across renames.
type fileID struct{ dev, ino uint64 }

// Open validates cfg and loads the hash cache from cfg.StateDir. A corrupt
// or unreadable cache is logged and replaced by an empty one, never an
// error. Open does not scan: call Scan.
func Open(cfg Config) (*Library, error) {
	cfg.populate()
	roots, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	l := &Library{cfg: cfg, log: cfg.Logger, roots: roots, cache: map[string]*record{}, idx: newIndex(nil)}
	if cfg.StateDir == "" {
		l.log.Info("no state folder: the hash cache is kept in memory only, so every start hashes all shared files")
		return l, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("shares: state folder %q: %w; choose a writable folder", cfg.StateDir, err)
	}
	if l.stateDir, err = resolve(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("shares: state folder %q: %w", cfg.StateDir, err)
	}
	l.cachePath = filepath.Join(l.stateDir, CacheFile)
	removeStaleTemps(l.stateDir)
	cache, err := loadCache(l.cachePath)
	if err != nil {
		l.cacheDiscards.Add(1)
		l.dirty = true
		l.log.Warn("hash cache unreadable; discarding it, the next scan hashes every file again",
			zap.String("file", l.cachePath), zap.Error(err))
		cache = map[string]*record{}
	}
	l.cache = cache
	l.log.Debug("hash cache loaded", zap.String("file", l.cachePath), zap.Int("entries", len(cache)))
	return l, nil
}

// Close saves the hash cache if AddFile changed it since the last scan.
// The Library must not be used afterwards.
func (l *Library) Close() error {
	l.scanMu.Lock()
	defer l.scanMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.saveLocked()
}

// saveLocked writes the cache if it changed. The caller holds scanMu.
func (l *Library) saveLocked() error {
	if !l.dirty || l.cachePath == "" {
		return nil
	}
	if err := saveCache(l.cachePath, l.cache); err != nil {
		l.cacheSaveErrs.Add(1)
		return fmt.Errorf("shares: saving hash cache %s: %w; check free space and permissions of the state folder (files will be hashed again next start)", l.cachePath, err)
	}
	l.dirty = false
	return nil
}

// Files returns the entries to announce, sorted by name then content ID.
// Before the first Scan it is empty.
func (l *Library) Files() []proto.FileEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.idx.files)
}

// Len returns len(Files()).
func (l *Library) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.idx.files)
}

// Stats returns the Library's counters.
func (l *Library) Stats() Stats {
	l.mu.RLock()
	s := Stats{Files: len(l.idx.byPath), Entries: len(l.idx.files), Bytes: l.idx.bytes, Skipped: l.skipped}
	l.mu.RUnlock()
	s.HashedFiles, s.HashedBytes = l.hashedFiles.Load(), l.hashedBytes.Load()
	s.CacheDiscards, s.CacheSaveErrors = l.cacheDiscards.Load(), l.cacheSaveErrs.Load()
	return s
}

// Lookup returns the file holding content cid: its path, size and piece
// hashes (which the caller must not modify). Only a file inside a share
// folder that is, right now, the same file the last scan hashed (same size,
// modification time and inode, reached without leaving the share folder) is
// returned; anything else, including an unknown cid, gives ok == false.
//
// Between Lookup and opening the path the file may still change; an
// uploader should prefer OpenContent, which checks the opened file itself.
func (l *Library) Lookup(cid proto.ContentID) (path string, size uint64, pieces []proto.PieceHash, ok bool) {
	for _, r := range l.candidates(cid) {
		root, err := os.OpenRoot(l.roots[r.root].path)
		if err != nil {
			continue
		}
		fi, err := root.Stat(r.rel)
		root.Close()
		if err == nil && r.matches(fi) {
			return r.path, r.size, r.pieces, true
		}
	}
	return "", 0, nil, false
}

// OpenContent opens the file holding content cid for reading, through the
// share folder so that no symbolic link can lead outside it, and checks the
// opened file is the one hashed. It returns the file, its size and its piece
// hashes (which the caller must not modify). The caller closes the file.
func (l *Library) OpenContent(cid proto.ContentID) (*os.File, uint64, []proto.PieceHash, error) {
	for _, r := range l.candidates(cid) {
		f, err := l.openInRoot(r.root, r.rel)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && r.matches(fi) {
			return f, r.size, r.pieces, nil
		}
		f.Close()
	}
	return nil, 0, nil, fmt.Errorf("shares: content %s is not shared here (unknown, or changed on disk since the last scan)", cid.Short())
}

func (l *Library) candidates(cid proto.ContentID) []*record {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.idx.byCID[cid]
}

// openInRoot opens rel inside share folder i, refusing symbolic links that
// leave it.
func (l *Library) openInRoot(i int, rel string) (*os.File, error) {
	root, err := os.OpenRoot(l.roots[i].path)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(rel)
}

// matches reports whether fi describes the file r was hashed from.
func (r *record) matches(fi fs.FileInfo) bool {
	return fi.Mode().IsRegular() && uint64(fi.Size()) == r.size && fi.ModTime().UnixNano() == r.modNs && fileIDOf(fi) == r.id
}

// index is the published state: immutable, replaced whole.
type index struct {
	byPath  map[string]*record
	byCID   map[proto.ContentID][]*record
	entries map[entryKey]proto.FileEntry
	files   []proto.FileEntry // entries, sorted
	bytes   uint64
}

// entryKey identifies an announced entry: copies of one file under one name
// are announced once.
type entryKey struct {
	cid  proto.ContentID
	name string
}

func newIndex(recs []*record) *index {
	x := &index{
		byPath:  make(map[string]*record, len(recs)),
		byCID:   make(map[proto.ContentID][]*record, len(recs)),
		entries: make(map[entryKey]proto.FileEntry, len(recs)),
	}
	for _, r := range recs {
		x.byPath[r.path] = r
		x.byCID[r.entry.ContentID] = append(x.byCID[r.entry.ContentID], r)
		x.entries[entryKey{r.entry.ContentID, r.entry.Name}] = r.entry
		x.bytes += r.size
	}
	x.files = make([]proto.FileEntry, 0, len(x.entries))
	for _, e := range x.entries {
		x.files = append(x.files, e)
	}
	sortEntries(x.files)
	return x
}

func sortEntries(es []proto.FileEntry) {
	slices.SortFunc(es, func(a, b proto.FileEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.ContentID[:], b.ContentID[:])
	})
}

// diff returns what changed from old to cur.
func diff(old, cur *index) Diff {
	var d Diff
	for k, e := range cur.entries {
		if _, ok := old.entries[k]; !ok {
			d.Added = append(d.Added, e)
		}
	}
	for k, e := range old.entries {
		if _, ok := cur.entries[k]; !ok {
			d.Removed = append(d.Removed, e)
		}
	}
	sortEntries(d.Added)
	sortEntries(d.Removed)
	return d
}

// publish replaces the index and returns the difference.
func (l *Library) publish(x *index, skipped *SkipCounts) Diff {
	l.mu.Lock()
	old := l.idx
	l.idx = x
	if skipped != nil {
		l.skipped = *skipped
	}
	l.mu.Unlock()
	return diff(old, x)
}

// AddFile adds one file that has just appeared in a share folder, typically
// a completed download, without a full scan. If pieces is non-nil they are
// taken as the file's piece hashes (the downloader verified every piece
// against them) and the file's content is not read again; otherwise the
// file is hashed. It returns what to announce: the file's entry, and the
// entry it replaces if a different file was indexed at that path.
//
// The file must be a regular file inside a share folder, with a name a scan
// would share.
func (l *Library) AddFile(ctx context.Context, path string, pieces []proto.PieceHash) (Diff, error) {
	l.scanMu.Lock()
	defer l.scanMu.Unlock()
	if l.closed {
		return Diff{}, errors.New("shares: AddFile on a closed Library")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Diff{}, fmt.Errorf("shares: AddFile %q: %w", path, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return Diff{}, fmt.Errorf("shares: AddFile %q: %w", path, err)
	}
	abs = filepath.Join(dir, filepath.Base(abs))
	ri := -1
	for i, r := range l.roots {
		if within(r.path, abs) {
			ri = i
		}
	}
	if ri < 0 {
		return Diff{}, fmt.Errorf("shares: AddFile %q: not inside a share folder; save downloads into one of %v", path, l.cfg.Dirs)
	}
	rel, _ := filepath.Rel(l.roots[ri].path, abs)
	if why := l.excluded(abs, rel); why != "" {
		return Diff{}, fmt.Errorf("shares: AddFile %q: not shared: %s", path, why)
	}

	h := newHasher(l, nil)
	rec, err := h.file(ctx, candidate{root: ri, rel: rel, path: abs}, pieces)
	if err != nil {
		return Diff{}, fmt.Errorf("shares: AddFile %q: %w", path, err)
	}
	l.cache[abs] = rec
	l.dirty = true

	l.mu.RLock()
	recs := make([]*record, 0, len(l.idx.byPath)+1)
	for p, r := range l.idx.byPath {
		if p != abs {
			recs = append(recs, r)
		}
	}
	l.mu.RUnlock()
	recs = append(recs, rec)
	return l.publish(newIndex(recs), nil), nil
}

// excluded says why a path inside share folder (relative path rel) would
// not be shared by a scan, or "" if it would be.
func (l *Library) excluded(abs, rel string) string {
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") {
			return "hidden (a name on its path starts with \".\")"
		}
	}
	if l.stateDir != "" && (abs == l.stateDir || within(l.stateDir, abs)) {
		return "inside Strata's state folder"
	}
	name := filepath.Base(abs)
	if strings.HasSuffix(name, PartSuffix) {
		return "partial download (" + PartSuffix + ")"
	}
	if err := validName(name); err != nil {
		return err.Error()
	}
	return ""
}

// validName checks a file name against what a FileEntry may carry.
func validName(name string) error {
	e := proto.FileEntry{ContentID: proto.ContentID{1}, Name: name}
	return proto.ValidateEntry(&e)
}
