package shares

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/media"
	"github.com/strata-p2p/strata/internal/piecehash"
	"github.com/strata-p2p/strata/proto"
)

// Progress is a snapshot of a running scan. Totals grow while the folders
// are walked, then stay fixed while files are hashed; files found in the
// hash cache count as done at once.
type Progress struct {
	FilesDone, FilesTotal int
	BytesDone, BytesTotal int64
	// Current is the file being hashed or the folder being walked.
	Current string
}

// racyWindow is how long after a file's modification time its hash is
// trusted only until the next scan. A file changed twice within the file
// system's timestamp granularity (up to 2 s on FAT) keeps its modification
// time; hashing it again once its timestamp is older than this closes the
// window in which a cache hit could return stale hashes.
const racyWindow = 2 * time.Second

// candidate is a file the walk found to share.
type candidate struct {
	root  int
	rel   string
	path  string
	size  uint64
	modNs int64
	id    fileID
}

// fresh reports whether cached record r still describes c without hashing.
func (r *record) fresh(c candidate) bool {
	return r.size == c.size && r.modNs == c.modNs && r.id == c.id && r.hashedAt-r.modNs > racyWindow.Nanoseconds()
}

// Scan walks every share folder, hashes files that are new or changed since
// they were last hashed, reads their metadata, publishes the new file list
// and saves the hash cache. It returns what was added and removed since the
// previous scan (the first scan adds everything).
//
// progress, if not nil, is called at most every Config.ProgressInterval and
// once at the end, one call at a time, from Scan's goroutines; it must
// return quickly.
//
// Files that cannot be read are logged, counted in Stats().Skipped and left
// out; they are not errors. A share folder that has gone away (an unmounted
// disk) has its files withdrawn but their hashes kept for its return.
// Scan returns an error only if ctx ends, in which case nothing is published
// but the hashing done is kept for the next scan.
func (l *Library) Scan(ctx context.Context, progress func(Progress)) (Diff, error) {
	l.scanMu.Lock()
	defer l.scanMu.Unlock()
	if l.closed {
		return Diff{}, errors.New("shares: Scan on a closed Library")
	}
	start := l.cfg.now()
	pr := newProgressReporter(progress, l.cfg.ProgressInterval, l.cfg.now)
	defer pr.final()

	var skipped SkipCounts
	cands, unavailable, err := l.walk(ctx, pr, &skipped)
	if err != nil {
		return Diff{}, fmt.Errorf("shares: scan interrupted: %w", err)
	}

	// Files whose cache entry still matches need no hashing. A file found
	// under a new path with the same inode, size and time was moved: its
	// piece hashes are kept, its name and metadata read again.
	byID := make(map[fileID]*record)
	for _, r := range l.cache {
		if r.id != (fileID{}) {
			byID[r.id] = r
		}
	}
	recs := make([]*record, len(cands))
	known := make([][]proto.PieceHash, len(cands))
	var todo []int
	for i, c := range cands {
		if r, ok := l.cache[c.path]; ok && r.fresh(c) {
			nr := *r
			nr.root, nr.rel = c.root, c.rel
			recs[i] = &nr
			pr.fileDone(int64(c.size))
			continue
		}
		if r, ok := byID[c.id]; ok && c.id != (fileID{}) && r.fresh(c) {
			known[i] = r.pieces
		}
		todo = append(todo, i)
	}

	hashedBefore, filesBefore := l.hashedBytes.Load(), l.hashedFiles.Load()
	l.hashAll(ctx, cands, todo, known, recs, pr, &skipped)
	if err := ctx.Err(); err != nil {
		for _, i := range todo {
			if recs[i] != nil {
				l.cache[recs[i].path] = recs[i]
				l.dirty = true
			}
		}
		return Diff{}, fmt.Errorf("shares: scan interrupted: %w", err)
	}

	final := make([]*record, 0, len(recs))
	cache := make(map[string]*record, len(recs))
	for _, r := range recs {
		if r != nil {
			final = append(final, r)
			cache[r.path] = r
		}
	}
	for p, r := range l.cache {
		if _, ok := cache[p]; !ok && l.underUnavailable(p, unavailable) {
			cache[p] = r
		}
	}
	if len(todo) > 0 || len(cache) != len(l.cache) {
		l.dirty = true
	}
	l.cache = cache // entries of vanished files are dropped here
	d := l.publish(newIndex(final), &skipped)
	if err := l.saveLocked(); err != nil {
		l.log.Warn("hash cache not saved", zap.Error(err))
	}
	logf := l.log.Debug // a periodic rescan that found nothing new stays quiet
	if len(todo) > 0 || !d.Empty() {
		logf = l.log.Info
	}
	logf("share scan done",
		zap.Int("files", len(final)), zap.Int64("hashed", l.hashedFiles.Load()-filesBefore),
		zap.Int64("hashed_bytes", l.hashedBytes.Load()-hashedBefore),
		zap.Int("added", len(d.Added)), zap.Int("removed", len(d.Removed)),
		zap.Any("skipped", skipped), zap.Duration("took", l.cfg.now().Sub(start)))
	return d, nil
}

// underUnavailable reports whether p lies in a share folder the walk could
// not enter.
func (l *Library) underUnavailable(p string, unavailable []bool) bool {
	for i, u := range unavailable {
		if u && within(l.roots[i].path, p) {
			return true
		}
	}
	return false
}

// walk lists the files to share. It follows no symbolic link to a folder;
// a symbolic link to a file is followed only if it stays inside its share
// folder (relative links only). It fails only if ctx ends.
func (l *Library) walk(ctx context.Context, pr *progressReporter, skipped *SkipCounts) ([]candidate, []bool, error) {
	var cands []candidate
	unavailable := make([]bool, len(l.roots))
	for i, sr := range l.roots {
		root, err := os.OpenRoot(sr.path)
		if err != nil {
			unavailable[i] = true
			l.log.Warn("share folder unavailable; its files are withdrawn until it returns",
				zap.String("dir", sr.dir), zap.Error(err))
			continue
		}
		err = filepath.WalkDir(sr.path, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				if p == sr.path {
					unavailable[i] = true
					l.log.Warn("share folder unreadable; its files are withdrawn until it can be read",
						zap.String("dir", sr.dir), zap.Error(err))
					return fs.SkipDir
				}
				skipped.Unreadable++
				l.log.Warn("cannot read in share folder; skipped", zap.String("path", p), zap.Error(err))
				return nil // WalkDir skips the folder it could not read
			}
			if p == sr.path {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if l.stateDir != "" && p == l.stateDir {
					return fs.SkipDir
				}
				pr.walking(p)
				return nil
			}
			rel, err := filepath.Rel(sr.path, p)
			if err != nil {
				return nil
			}
			var fi fs.FileInfo
			switch t := d.Type(); {
			case t.IsRegular():
				fi, err = d.Info()
			case t&fs.ModeSymlink != 0:
				fi, err = root.Stat(rel) // follows the link only within the share folder
				if err != nil || !fi.Mode().IsRegular() {
					skipped.Symlink++
					l.log.Warn("symbolic link leads out of the share folder, is broken, or names a folder; not followed",
						zap.String("path", p), zap.NamedError("reason", err))
					return nil
				}
			default:
				skipped.Special++
				return nil
			}
			if err != nil {
				skipped.Unreadable++
				l.log.Warn("cannot stat shared file; skipped", zap.String("path", p), zap.Error(err))
				return nil
			}
			switch {
			case strings.HasSuffix(name, PartSuffix):
				skipped.Partial++
				return nil
			case fi.Size() == 0:
				skipped.Empty++
				return nil
			}
			if err := validName(name); err != nil {
				skipped.InvalidName++
				l.log.Warn("file name cannot be announced; rename the file to share it",
					zap.String("path", p), zap.Error(err))
				return nil
			}
			cands = append(cands, candidate{
				root: i, rel: rel, path: p,
				size: uint64(fi.Size()), modNs: fi.ModTime().UnixNano(), id: fileIDOf(fi),
			})
			pr.found(fi.Size())
			return nil
		})
		root.Close()
		if err != nil && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
	}
	return cands, unavailable, nil
}

// hashAll hashes cands[i] for every i in todo with Config.HashWorkers
// workers, storing each result in recs[i]. Failures are logged and counted.
func (l *Library) hashAll(ctx context.Context, cands []candidate, todo []int, known [][]proto.PieceHash,
	recs []*record, pr *progressReporter, skipped *SkipCounts) {
	if len(todo) == 0 {
		return
	}
	jobs := make(chan int)
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards skipped
	)
	for range min(l.cfg.HashWorkers, len(todo)) {
		wg.Go(func() {
			h := newHasher(l, pr)
			for i := range jobs {
				rec, err := h.file(ctx, cands[i], known[i])
				if err == nil {
					recs[i] = rec
					continue
				}
				if ctx.Err() != nil {
					continue
				}
				mu.Lock()
				if errors.Is(err, errEmpty) {
					skipped.Empty++
				} else {
					skipped.Unreadable++
				}
				mu.Unlock()
				l.log.Warn("cannot hash shared file; skipped until the next scan", zap.String("path", cands[i].path), zap.Error(err))
			}
		})
	}
feed:
	for _, i := range todo {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
}

var errEmpty = errors.New("empty file; Strata does not share empty files")

// hasher hashes files one at a time with its own piece buffer.
type hasher struct {
	l   *Library
	pr  *progressReporter
	buf []byte
}

func newHasher(l *Library, pr *progressReporter) *hasher {
	return &hasher{l: l, pr: pr}
}

// file opens c inside its share folder and builds its record: piece hashes
// (taken from known when it is non-nil and the file is still the one the
// walk saw, or when c has no walk data, as from AddFile), content ID and
// metadata. It fails if the file changes while being read.
func (h *hasher) file(ctx context.Context, c candidate, known []proto.PieceHash) (rec *record, err error) {
	var done int64 // bytes reported to the progress reporter so far
	defer func() { h.pr.fileDone(max(int64(c.size)-done, 0)) }()
	f, err := h.l.openInRoot(c.root, c.rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() == 0 {
		return nil, errEmpty
	}
	rec = &record{
		path: c.path, root: c.root, rel: c.rel,
		size: uint64(fi.Size()), modNs: fi.ModTime().UnixNano(), id: fileIDOf(fi),
		hashedAt: h.l.cfg.now().UnixNano(),
	}
	walked := c.modNs != 0 || c.size != 0
	if walked && (rec.size != c.size || rec.modNs != c.modNs) {
		known = nil // changed since the walk: the old hashes are not its hashes
	}
	switch {
	case known != nil && len(known) == proto.NumPieces(rec.size):
		rec.pieces = append([]proto.PieceHash(nil), known...)
	case known != nil && !walked:
		return nil, fmt.Errorf("%d piece hashes given for a %d-byte file, want %d", len(known), rec.size, proto.NumPieces(rec.size))
	default:
		if rec.pieces, err = h.hash(ctx, f, c.path, rec.size, &done); err != nil {
			return nil, err
		}
	}
	rec.entry = h.describe(f, rec)
	rec.entry.ContentID = proto.ContentIDOf(rec.size, rec.pieces)

	if fi, err := f.Stat(); err != nil || uint64(fi.Size()) != rec.size || fi.ModTime().UnixNano() != rec.modNs {
		return nil, errors.New("changed while being hashed")
	}
	if err := proto.ValidateEntry(&rec.entry); err != nil {
		return nil, err
	}
	return rec, nil
}

// hash reads size bytes of f and returns their piece hashes.
func (h *hasher) hash(ctx context.Context, f io.Reader, path string, size uint64, done *int64) ([]proto.PieceHash, error) {
	if h.buf == nil {
		h.buf = make([]byte, proto.PieceSize)
	}
	n := proto.NumPieces(size)
	if n < 0 {
		return nil, fmt.Errorf("%d bytes: too large", size)
	}
	pieces := make([]proto.PieceHash, 0, n)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := h.buf[:min(left, proto.PieceSize)]
		if _, err := io.ReadFull(f, b); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, errors.New("changed while being hashed (shorter than its size)")
			}
			return nil, err
		}
		pieces = append(pieces, piecehash.Sum(b))
		left -= uint64(len(b))
		*done += int64(len(b))
		h.l.hashedBytes.Add(int64(len(b)))
		h.pr.bytesDone(int64(len(b)), path)
	}
	h.l.hashedFiles.Add(1)
	return pieces, nil
}

// describe returns the entry fields other than the content ID: name, size,
// media type, and for MP3 files the audio properties and tags.
func (h *hasher) describe(f io.ReaderAt, rec *record) proto.FileEntry {
	name := filepath.Base(rec.path)
	e := proto.FileEntry{Name: name, Size: rec.size, Media: media.TypeOf(name)}
	if !media.IsMP3(name) {
		return e
	}
	info, err := media.ParseMP3(f, int64(rec.size))
	if err != nil {
		h.l.log.Debug("MP3 metadata incomplete", zap.String("path", rec.path), zap.Error(err))
	}
	if err == nil {
		e.Bitrate = uint32(info.Bitrate)
		e.SampleRate = uint32(info.SampleRate)
		e.Duration = uint32(min(info.Duration.Round(time.Second)/time.Second, 1<<32-1))
	}
	e.Artist, e.Title, e.Album = cleanTag(info.Artist), cleanTag(info.Title), cleanTag(info.Album)
	return e
}

// cleanTag makes tag text announceable: valid UTF-8, no control
// characters, trimmed, and cut at a character boundary to proto.MaxTagLen.
func cleanTag(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if len(s) > proto.MaxTagLen {
		cut := proto.MaxTagLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

// progressReporter throttles calls of a Scan's progress function.
type progressReporter struct {
	fn    func(Progress)
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	p    Progress
	last time.Time
}

func newProgressReporter(fn func(Progress), every time.Duration, now func() time.Time) *progressReporter {
	return &progressReporter{fn: fn, every: every, now: now}
}

// update applies f and reports if the interval has passed.
func (r *progressReporter) update(f func(*Progress)) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.p)
	if now := r.now(); now.Sub(r.last) >= r.every {
		r.last = now
		r.fn(r.p)
	}
}

func (r *progressReporter) walking(dir string) { r.update(func(p *Progress) { p.Current = dir }) }

func (r *progressReporter) found(size int64) {
	r.update(func(p *Progress) { p.FilesTotal++; p.BytesTotal += size })
}

func (r *progressReporter) bytesDone(n int64, path string) {
	r.update(func(p *Progress) { p.BytesDone += n; p.Current = path })
}

// fileDone counts one file finished (hashed, found in the cache, or given
// up) with the n bytes of it not yet counted.
func (r *progressReporter) fileDone(n int64) {
	r.update(func(p *Progress) { p.FilesDone++; p.BytesDone += n })
}

// final reports the last state, whatever the interval.
func (r *progressReporter) final() {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Current = ""
	r.fn(r.p)
}
