package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/internal/piecehash"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

// maxHolders bounds the holders one download remembers (hits come from
// the network).
const maxHolders = 64

// rateWindow is how many one-second samples the rate is averaged over.
const rateWindow = 5

// download is one content ID being fetched. Its run goroutine owns the
// lifecycle (find, piece list, workers, checkpoints, finish); one worker
// goroutine per source fetches ranges. mu guards everything below it;
// pieces, size and part are set before workers start and then only read.
type download struct {
	m   *Manager
	id  string
	cid proto.ContentID
	log *zap.Logger

	progress chan struct{} // capacity 1: the download completed or failed

	mu        sync.Mutex
	name      string
	names     map[string]int // names in hits, for choosing one; bounded by maxHolders
	size      uint64
	pieces    []proto.PieceHash
	savedHave []byte // bitfield from the state file, for the log on resume
	pick      *picker
	part      *os.File
	direct    *directFile // part opened for direct writes; nil where unsupported
	directOff atomic.Bool // direct writes failed with EINVAL: use part
	state     string
	errMsg    string
	path      string
	started   time.Time
	finished  time.Time
	holders   []*holder
	samples   []sample
	rate      float64
	changed   chan struct{} // closed and replaced whenever the picker changes
	fatal     error         // the download cannot go on (disk error)
	running   bool
	cancelled bool
	cancel    context.CancelFunc
	done      chan struct{} // closed when run returns
}

// holder is one peer that has the content.
type holder struct {
	info      proto.PeerInfo
	state     string // "" until first used, then a Source* state
	queuePos  int
	bytes     uint64    // verified bytes received
	since     time.Time // first RangeReply, for its rate
	reason    string
	permanent bool // lied or has no copy: never retried
	attempts  int
	retryAt   time.Time
	running   bool
	sess      *session.Session // from the piece-list fetch, for its first worker
	path      Path             // how the last session reached it
}

// rate is h's verified bytes per second since its first reply, 0 when
// unknown.
func (h *holder) rate(now time.Time) float64 {
	el := now.Sub(h.since).Seconds()
	if h.since.IsZero() || h.bytes == 0 || el <= 0 {
		return 0
	}
	return float64(h.bytes) / el
}

type sample struct {
	at   time.Time
	done uint64
}

// sourceError is why a source was dropped.
type sourceError struct {
	reason    string
	permanent bool
}

func (e *sourceError) Error() string { return e.reason }

// fatalError stops the whole download (our disk, not a source, failed).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func (m *Manager) newDownload(cid proto.ContentID, name string) *download {
	return &download{m: m, id: cid.String(), cid: cid, log: m.log.With(zap.String("content", cid.Short())),
		progress: make(chan struct{}, 1), name: name, names: map[string]int{}, state: StateFinding,
		started: m.cfg.Now(), changed: make(chan struct{})}
}

// resume seeds d from a state file.
func (d *download) resume(p *partial) {
	d.name, d.size, d.pieces, d.savedHave = p.name, p.size, p.pieces, p.have
	d.state = StateDownloading
	if !p.started.IsZero() {
		d.started = p.started
	}
}

// pending reports whether d waits for Start.
func (d *download) pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.running && !d.terminalLocked()
}

// live reports whether Get should return d rather than start again.
func (d *download) live() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state != StateFailed && d.state != StateCancelled
}

func (d *download) terminalLocked() bool {
	return d.state == StateDone || d.state == StateFailed || d.state == StateCancelled
}

func (d *download) finishedAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.terminalLocked() {
		return time.Time{}
	}
	return d.finished
}

func (d *download) setState(s string) {
	d.mu.Lock()
	d.state = s
	d.mu.Unlock()
}

func (d *download) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *download) signal() {
	select {
	case d.progress <- struct{}{}:
	default:
	}
}

func (d *download) partPath() string { return filepath.Join(d.m.cfg.Dir, partName(d.name, d.cid)) }

// run is the download's goroutine.
func (d *download) run(ctx context.Context) {
	d.log.Info("download starting")
	err := d.execute(ctx)
	if d.part != nil { // stopped before the end: keep what we have
		d.mu.Lock()
		cancelled := d.cancelled
		d.mu.Unlock()
		if !cancelled {
			d.checkpoint()
		}
		d.closeDirect()
		_ = d.part.Close()
		d.part = nil
	}
	d.mu.Lock()
	switch {
	case err == nil:
	case ctx.Err() != nil && !errors.As(err, new(*fatalError)):
		// Close, Cancel or the Manager's context: the state file lets it resume.
	default:
		d.state, d.errMsg, d.finished = StateFailed, err.Error(), d.m.cfg.Now()
		d.log.Warn("download failed", zap.Error(err))
	}
	d.running = false
	done := d.done
	d.mu.Unlock()
	close(done)
}

func (d *download) execute(ctx context.Context) error {
	cfg := &d.m.cfg
	d.mu.Lock()
	known := d.pieces != nil
	d.mu.Unlock()
	if known && cfg.Have != nil {
		if path, ok := cfg.Have(d.cid); ok {
			d.dropPartial()
			d.mu.Lock()
			d.state, d.path, d.finished = StateDone, path, cfg.Now()
			d.mu.Unlock()
			return nil
		}
	}
	if !known {
		hits, err := cfg.Find(ctx, d.cid)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("searching for holders of %s: %w", d.cid, err)
		}
		if d.addHits(hits) == 0 {
			return d.allFailed()
		}
		d.chooseName()
		if err := d.fetchPieceList(ctx); err != nil {
			return err
		}
	}
	if err := d.openPart(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	complete := d.pick.complete()
	d.mu.Unlock()
	if !complete {
		if err := d.fetchAll(ctx, known); err != nil {
			return err
		}
	}
	return d.finish()
}

// addHits records the holders among hits and returns how many are new.
func (d *download) addHits(hits []proto.Hit) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	added := 0
	for _, h := range hits {
		id := h.Holder.ID
		if h.Entry.ContentID != d.cid || id.IsZero() || id == d.m.cfg.Self || len(h.Holder.Addrs) == 0 {
			continue
		}
		if i := slices.IndexFunc(d.holders, func(x *holder) bool { return x.info.ID == id }); i >= 0 {
			if !d.holders[i].running {
				d.holders[i].info = h.Holder // addresses may have changed
			}
			continue
		}
		if len(d.holders) >= maxHolders {
			continue
		}
		d.holders = append(d.holders, &holder{info: h.Holder})
		added++
		if checkName(h.Entry.Name) == nil {
			d.names[h.Entry.Name]++
		}
		if d.pieces == nil && d.size == 0 {
			d.size = h.Entry.Size // shown until the piece list says
		}
	}
	return added
}

// chooseName picks the most common valid name among the hits when Get was
// given none (ties: the smallest), or the content ID's prefix.
func (d *download) chooseName() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.name != "" {
		return
	}
	best, n := "", 0
	for name, k := range d.names {
		if k > n || (k == n && name < best) {
			best, n = name, k
		}
	}
	if best == "" {
		best = d.cid.Short()
	}
	d.name = best
}

// allFailed says why no source is left.
func (d *download) allFailed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var why []string
	for _, h := range d.holders {
		if h.reason != "" {
			why = append(why, h.info.ID.Short()+": "+h.reason)
		}
	}
	if len(why) == 0 {
		return fmt.Errorf("no source for %s could be found; check that a node sharing it is online, then Get it again", d.cid)
	}
	return fmt.Errorf("every source failed: %s", strings.Join(why, ", "))
}

// drop records that h failed with err.
func (d *download) drop(h *holder, err error) {
	var se *sourceError
	if !errors.As(err, &se) {
		se = &sourceError{reason: "connection lost: " + err.Error()}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h.state, h.reason, h.queuePos = SourceDropped, se.reason, 0
	h.attempts++
	h.permanent = h.permanent || se.permanent
	h.retryAt = time.Now().Add(d.retryDelay())
	d.log.Info("source dropped", zap.String("peer", h.info.ID.Short()), zap.String("reason", se.reason),
		zap.Bool("permanent", se.permanent), zap.Int("attempts", h.attempts))
}

func (d *download) retryDelay() time.Duration { return min(d.m.cfg.StallTimeout, 5*time.Second) }

func (d *download) eligibleLocked(h *holder, now time.Time) bool {
	return !h.running && !h.permanent && h.attempts < d.m.cfg.MaxAttempts && !now.Before(h.retryAt)
}

// fetchPieceList gets the piece hashes from the first holder that answers
// with a list matching the content ID; that holder's session is kept for
// its worker.
func (d *download) fetchPieceList(ctx context.Context) error {
	d.mu.Lock()
	hs := slices.Clone(d.holders)
	d.mu.Unlock()
	for _, h := range hs {
		d.mu.Lock()
		ok := d.eligibleLocked(h, time.Now())
		d.mu.Unlock()
		if !ok {
			continue
		}
		sess, err := d.dial(ctx, h)
		if err == nil {
			var size uint64
			var pieces []proto.PieceHash
			size, pieces, err = requestPieces(ctx, sess, d.cid, d.m.cfg.StallTimeout)
			if err == nil {
				d.mu.Lock()
				d.size, d.pieces, h.sess = size, pieces, sess
				d.mu.Unlock()
				return nil
			}
			_ = sess.CloseWithError(proto.CodeOK, "")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.drop(h, err)
	}
	return d.allFailed()
}

func (d *download) dial(ctx context.Context, h *holder) (*session.Session, error) {
	d.mu.Lock()
	h.state, h.queuePos = SourceConnecting, 0
	info := h.info
	d.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, d.m.cfg.StallTimeout)
	defer cancel()
	sess, err := d.m.cfg.Dial(dctx, info)
	if err != nil {
		return nil, &sourceError{reason: "cannot connect: " + err.Error()}
	}
	if d.m.cfg.PathOf != nil {
		p := d.m.cfg.PathOf(sess)
		d.mu.Lock()
		h.path = p
		d.mu.Unlock()
	}
	return sess, nil
}

// openPart opens (or creates) the part file at the right size, verifies
// whatever it already holds, and sets up the picker.
func (d *download) openPart(ctx context.Context) error {
	path := d.partPath()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return &fatalError{fmt.Errorf("creating %s: %w; check that %s is writable", path, err, d.m.cfg.Dir)}
	}
	fi, err := f.Stat()
	if err == nil && uint64(fi.Size()) != d.size {
		err = f.Truncate(int64(d.size))
	}
	if err != nil {
		_ = f.Close()
		return &fatalError{fmt.Errorf("sizing %s to %d bytes: %w; check free space", path, d.size, err)}
	}
	if err := checkSpace(f, int64(d.size)); err != nil {
		_ = f.Close()
		return &fatalError{fmt.Errorf("no room for %s (%d bytes): %w; free space in %s, then Get it again", d.name, d.size, err, d.m.cfg.Dir)}
	}
	have := make([]bool, len(d.pieces))
	if fi.Size() > 0 {
		d.setState(StateVerifying)
		have, err = verifyPart(ctx, f, d.size, d.pieces)
		if err != nil {
			_ = f.Close()
			return err
		}
		claimed := bitsToBools(d.savedHave, len(d.pieces))
		var kept, lost int
		for i := range have {
			if have[i] {
				kept++
			} else if claimed[i] {
				lost++
			}
		}
		d.log.Info("resuming download", zap.String("name", d.name), zap.Int("pieces_kept", kept),
			zap.Int("pieces", len(have)), zap.Int("claimed_pieces_that_failed", lost))
	}
	d.mu.Lock()
	d.part = f
	if !d.m.cfg.pageCacheOnly {
		d.direct = openDirect(path, &d.m.async)
	}
	d.pick = newPicker(d.size, d.m.cfg.ChunkPieces, have)
	d.mu.Unlock()
	d.checkpoint()
	return nil
}

func (d *download) closeDirect() {
	if d.direct != nil {
		_ = d.direct.Close()
		d.direct = nil
	}
}

// verifyPart hashes every piece in f and reports which match.
func verifyPart(ctx context.Context, f *os.File, size uint64, pieces []proto.PieceHash) ([]bool, error) {
	have := make([]bool, len(pieces))
	buf := make([]byte, proto.PieceSize)
	for i := range pieces {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		n := pieceLen(size, i)
		if k, _ := f.ReadAt(buf[:n], int64(i)*proto.PieceSize); k == n && piecehash.Sum(buf[:n]) == pieces[i] {
			have[i] = true
		}
	}
	return have, nil
}

// checkpoint fsyncs the part file, then saves the state: the bitfield
// saved is the one taken before the fsync, so it claims only synced pieces.
func (d *download) checkpoint() {
	d.mu.Lock()
	p := &partial{cid: d.cid, name: d.name, size: d.size, pieces: d.pieces, have: d.pick.bitfield(), started: d.started}
	d.mu.Unlock()
	err := d.part.Sync()
	if err == nil {
		err = savePartial(d.m.partialDir, p)
	}
	if err != nil {
		d.log.Warn("saving download state failed; pieces since the last save are re-verified on restart", zap.Error(err))
	}
}

// dropPartial removes the part file and the state.
func (d *download) dropPartial() {
	if d.name != "" {
		_ = os.Remove(d.partPath())
	}
	_ = os.Remove(statePath(d.m.partialDir, d.cid))
}

type findResult struct {
	hits []proto.Hit
	err  error
}

// fetchAll runs workers until every piece is had, the sources run out, or
// ctx ends. resumed says that holders still have to be found (a resumed
// download).
func (d *download) fetchAll(ctx context.Context, resumed bool) error {
	cfg := &d.m.cfg
	d.setState(StateDownloading)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	exits := make(chan *holder, cfg.MaxSources)
	finds := make(chan findResult, 1)
	finding := false
	var lastFind time.Time
	startFind := func() {
		finding = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			hits, err := cfg.Find(wctx, d.cid)
			finds <- findResult{hits, err}
		}()
	}
	if resumed {
		startFind()
	} else {
		lastFind = time.Now()
	}
	tick := time.NewTicker(min(time.Second, cfg.CheckpointInterval, cfg.RefindInterval))
	defer tick.Stop()
	lastSave := time.Now()
	running := 0
	starved := false // a Find ran while no source was running and none was left
	for {
		d.mu.Lock()
		fatal, complete := d.fatal, d.pick.complete()
		d.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if complete {
			return nil
		}
		if n := d.startWorkers(wctx, &wg, exits, cfg.MaxSources-running); n > 0 {
			running += n
			starved = false
		}
		var retry <-chan time.Time
		if running == 0 && !finding {
			if next, ok := d.nextRetry(); ok {
				retry = time.After(time.Until(next))
			} else if !starved {
				starved = true
				startFind()
			} else {
				return d.allFailed()
			}
		}
		select {
		case <-exits:
			running--
		case <-d.progress:
		case r := <-finds:
			finding, lastFind = false, time.Now()
			if r.err != nil && ctx.Err() == nil {
				d.log.Info("search for more holders failed", zap.Error(r.err))
			}
			if d.addHits(r.hits) > 0 {
				starved = false
			}
		case <-tick.C:
			d.sample()
			if time.Since(lastSave) >= cfg.CheckpointInterval {
				d.checkpoint()
				lastSave = time.Now()
			}
			if running < cfg.MaxSources && !finding && time.Since(lastFind) >= cfg.RefindInterval {
				startFind()
			}
		case <-retry:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startWorkers starts up to room workers on eligible holders.
func (d *download) startWorkers(ctx context.Context, wg *sync.WaitGroup, exits chan<- *holder, room int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	n := 0
	for _, h := range d.holders {
		if n >= room {
			break
		}
		if !d.eligibleLocked(h, now) {
			continue
		}
		h.running = true
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx, h)
			exits <- h
		}()
	}
	return n
}

// nextRetry is when the earliest holder waiting to be retried may be.
func (d *download) nextRetry() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	for _, h := range d.holders {
		if h.running || h.permanent || h.attempts >= d.m.cfg.MaxAttempts {
			continue
		}
		if next.IsZero() || h.retryAt.Before(next) {
			next = h.retryAt
		}
	}
	return next, !next.IsZero()
}

// sample records progress for the rate.
func (d *download) sample() {
	now := d.m.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.samples = append(d.samples, sample{now, d.pick.bytes})
	if len(d.samples) > rateWindow+1 {
		d.samples = d.samples[1:]
	}
	first, last := d.samples[0], d.samples[len(d.samples)-1]
	if el := last.at.Sub(first.at).Seconds(); el > 0 {
		d.rate = float64(last.done-first.done) / el
	}
}

// work fetches from h until there is nothing left for it or it fails.
func (d *download) work(ctx context.Context, h *holder) {
	err := d.workSource(ctx, h)
	var fe *fatalError
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.As(err, &fe):
		d.mu.Lock()
		if d.fatal == nil {
			d.fatal = fe
		}
		d.mu.Unlock()
		d.signal()
	default:
		d.drop(h, err)
	}
	d.mu.Lock()
	h.running = false
	if h.state == SourceQueued {
		h.state, h.queuePos = SourceActive, 0
	}
	d.notifyLocked()
	d.mu.Unlock()
}

// finish gives the complete file its final name.
func (d *download) finish() error {
	cfg := &d.m.cfg
	d.setState(StateVerifying)
	part := d.partPath()
	d.closeDirect()
	err := d.part.Sync()
	if cerr := d.part.Close(); err == nil {
		err = cerr
	}
	d.part = nil
	if err != nil {
		return &fatalError{fmt.Errorf("flushing %s: %w; check the disk and free space, then Get it again", part, err)}
	}
	path, err := place(cfg.Dir, part, d.name, d.cid, d.size)
	if err != nil {
		return &fatalError{fmt.Errorf("moving the finished download into %s: %w", cfg.Dir, err)}
	}
	if err := atomicfile.SyncDir(cfg.Dir); err != nil {
		d.log.Warn("fsync of the download folder failed", zap.String("dir", cfg.Dir), zap.Error(err))
	}
	if err := os.Remove(statePath(d.m.partialDir, d.cid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("removing the state of a finished download failed", zap.Error(err))
	}
	d.mu.Lock()
	d.state, d.path, d.finished = StateDone, path, cfg.Now()
	pieces := d.pieces
	d.mu.Unlock()
	d.log.Info("download finished", zap.String("path", path), zap.Uint64("size", d.size))
	if cfg.OnComplete != nil {
		cfg.OnComplete(path, d.cid, pieces)
	}
	return nil
}

// status is d as the control API shows it.
func (d *download) status() DownloadStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DownloadStatus{ID: d.id, ContentID: d.cid, Name: d.name, Size: d.size, State: d.state, RateBps: d.rate,
		Path: d.path, Error: d.errMsg, StartedAt: d.started, FinishedAt: d.finished, Sources: []SourceStatus{}}
	if d.pick != nil {
		s.Done = d.pick.bytes
	}
	if d.state == StateDone {
		s.Done, s.RateBps = s.Size, 0
	}
	if d.state == StateDownloading && s.RateBps > 0 {
		s.ETASeconds = float64(s.Size-s.Done) / s.RateBps
	}
	for _, h := range d.holders {
		if h.state == "" {
			continue
		}
		s.Sources = append(s.Sources, SourceStatus{Peer: h.info, State: h.state, QueuePosition: h.queuePos,
			Bytes: h.bytes, Reason: h.reason, Path: h.path})
		if h.path.Via == "relay" && (h.state == SourceActive || h.bytes > 0) {
			s.Relayed = true
		}
	}
	return s
}
