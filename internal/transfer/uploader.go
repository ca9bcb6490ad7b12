package transfer

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

// MaxHashesPerFrame is the most piece hashes one Pieces frame carries:
// 16,384 hashes are 512 KiB, half the frame cap, and cover a 4 GiB file.
// (proto's PiecesRequest refers to a proto.MaxHashesPerFrame that proto does
// not define; this is the value the transfer code uses on both ends.)
const MaxHashesPerFrame = 16384

// Library is where an Uploader finds shared files. *shares.Library
// satisfies it; it only ever opens files inside share folders, and the
// Uploader reads only through the *os.File it returns (never a path).
type Library interface {
	OpenContent(cid proto.ContentID) (*os.File, uint64, []proto.PieceHash, error)
}

// UploaderConfig tunes an Uploader. The zero value is valid: unset fields
// take the values of DefaultUploaderConfig, out-of-range ones are clamped.
type UploaderConfig struct {
	// Slots is how many ranges are sent at once; further requests wait in
	// the queue.
	Slots int
	// QueueLen bounds the first-in first-out queue of requests waiting for
	// a slot; a request beyond it is refused with CodeFull.
	QueueLen int
	// PerPeer bounds the slots and queue places one peer may hold at once;
	// more requests from it are refused with CodeRateLimited, so one peer
	// cannot fill the queue.
	PerPeer int
	// MaxRate caps the bytes per second all uploads send together; 0 means
	// no cap.
	MaxRate int64
	// StallTimeout ends an upload whose writes make no progress for this
	// long (a requester that stopped reading), so it cannot hold a slot.
	StallTimeout time.Duration
	// QueueRefresh is how often a queued requester is sent its position
	// again even when it has not changed: it tells the requester we are
	// alive, and a requester that went away is noticed by the failed write.
	// It must stay well under the requesters' stall timeout (10 s).
	QueueRefresh time.Duration
	// MaxRange is the longest range served in one request.
	MaxRange uint64
	// Logger receives one line per failed upload. Nil means none.
	Logger *zap.Logger
}

// DefaultUploaderConfig returns the defaults; they are stated only here.
func DefaultUploaderConfig() UploaderConfig {
	return UploaderConfig{
		Slots:        4,
		QueueLen:     32,
		PerPeer:      4,
		StallTimeout: 20 * time.Second,
		QueueRefresh: 3 * time.Second,
		MaxRange:     64 << 20,
	}
}

func (c UploaderConfig) populate() UploaderConfig {
	d := DefaultUploaderConfig()
	if c.Slots <= 0 {
		c.Slots = d.Slots
	}
	if c.QueueLen <= 0 {
		c.QueueLen = d.QueueLen
	}
	if c.PerPeer <= 0 {
		c.PerPeer = d.PerPeer
	}
	if c.MaxRate < 0 {
		c.MaxRate = 0
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = d.StallTimeout
	}
	if c.QueueRefresh <= 0 {
		c.QueueRefresh = d.QueueRefresh
	}
	if c.MaxRange == 0 {
		c.MaxRange = d.MaxRange
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Write sizes: capped uploads write at most cappedChunk bytes per token wait,
// so the cap is smooth; uncapped ones write bigger blocks for fewer calls.
const (
	cappedChunk   = 32 << 10
	uncappedChunk = 256 << 10
)

// maxPeerTotals bounds the per-peer byte counts kept for Status; the peer
// idle longest is forgotten first.
const maxPeerTotals = 256

// Uploader serves piece-hash lists and byte ranges of the files in a
// Library, with a bounded number of slots, a bounded FIFO queue and one rate
// cap shared by all uploads. It does not listen: the node hands it streams
// through HandleStream.
type Uploader struct {
	cfg    UploaderConfig
	lib    Library
	log    *zap.Logger
	bucket *bucket // nil without a cap
	chunk  int
	bufs   sync.Pool // *[]byte of chunk bytes
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup // HandleStream calls in progress
	total  atomic.Uint64

	mu      sync.Mutex
	closed  bool
	active  map[*upload]struct{}
	queue   []*upload
	perPeer map[proto.PeerID]int // slots + queue places; entries at 0 are deleted
	peers   map[proto.PeerID]*peerTotal
}

// upload is one range request, from admission to its end.
type upload struct {
	peer     proto.PeerID
	cid      proto.ContentID
	offset   uint64
	length   uint64
	tally    *peerTotal
	granted  chan struct{} // closed when the upload gets a slot
	moved    chan struct{} // capacity 1: its queue position changed
	started  time.Time     // when it got its slot; guarded by Uploader.mu
	sent     atomic.Uint64
	inActive bool // guarded by Uploader.mu
}

type peerTotal struct {
	bytes atomic.Uint64
	last  time.Time // guarded by Uploader.mu
}

// NewUploader returns an Uploader serving lib. It starts no goroutines.
func NewUploader(cfg UploaderConfig, lib Library) *Uploader {
	cfg = cfg.populate()
	u := &Uploader{cfg: cfg, lib: lib, log: cfg.Logger, chunk: uncappedChunk,
		active: map[*upload]struct{}{}, perPeer: map[proto.PeerID]int{}, peers: map[proto.PeerID]*peerTotal{}}
	if cfg.MaxRate > 0 {
		u.bucket = newBucket(cfg.MaxRate, time.Now())
		u.chunk = cappedChunk
	}
	u.bufs.New = func() any { b := make([]byte, u.chunk); return &b }
	u.ctx, u.stop = context.WithCancel(context.Background())
	return u
}

// HandleStream serves a stream whose first message is a *proto.PiecesRequest
// or a *proto.RangeRequest and returns true once it is done with it; for any
// other message it returns false at once and leaves the stream alone.
func (u *Uploader) HandleStream(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) bool {
	switch first.(type) {
	case *proto.PiecesRequest, *proto.RangeRequest:
	default:
		return false
	}
	if !u.enter() {
		st.Fail(proto.Errorf(proto.CodeShutdown, "uploads are shutting down; ask another holder"))
		return true
	}
	defer u.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(u.ctx, cancel)()
	defer context.AfterFunc(s.Context(), cancel)()
	switch m := first.(type) {
	case *proto.PiecesRequest:
		u.servePieces(ctx, st, m)
	case *proto.RangeRequest:
		u.serveRange(ctx, s.RemotePeer(), st, m)
	}
	return true
}

func (u *Uploader) enter() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.wg.Add(1)
	return true
}

// resetOnDone resets st both ways when ctx ends (Close, or the connection
// went away), so no write stays blocked. Call the returned stop before the
// normal end of the stream.
func resetOnDone(ctx context.Context, st *session.Stream) func() bool {
	return context.AfterFunc(ctx, func() {
		st.CancelWrite(proto.CodeShutdown)
		st.CancelRead(proto.CodeShutdown)
	})
}

func notShared(cid proto.ContentID) error {
	return proto.Errorf(proto.CodeNotFound, "content %s is not shared here; ask another holder", cid.Short())
}

func (u *Uploader) servePieces(ctx context.Context, st *session.Stream, req *proto.PiecesRequest) {
	f, size, pieces, err := u.lib.OpenContent(req.ContentID)
	if err != nil {
		st.Fail(notShared(req.ContentID))
		return
	}
	_ = f.Close()
	n, first := uint64(len(pieces)), uint64(req.First)
	if first > n {
		st.Fail(proto.Errorf(proto.CodeBadRequest, "content %s has %d piece hashes; First %d is past the end", req.ContentID.Short(), n, first))
		return
	}
	count := uint64(req.Count)
	if count == 0 || count > n-first {
		count = n - first
	}
	defer resetOnDone(ctx, st)()
	for {
		k := min(count, MaxHashesPerFrame)
		hashes := make([]byte, 0, k*32)
		for _, h := range pieces[first : first+k] {
			hashes = append(hashes, h[:]...)
		}
		_ = st.SetWriteDeadline(time.Now().Add(u.cfg.StallTimeout))
		if err := st.Send(&proto.Pieces{ContentID: req.ContentID, Size: size, First: uint32(first), Hashes: hashes}); err != nil {
			u.log.Debug("piece list not sent", zap.Stringer("content", req.ContentID), zap.Error(err))
			st.CancelWrite(proto.CodeTimeout)
			st.CancelRead(proto.CodeTimeout)
			return
		}
		first, count = first+k, count-k
		if count == 0 {
			break
		}
	}
	st.Finish()
}

func (u *Uploader) serveRange(ctx context.Context, peer proto.PeerID, st *session.Stream, req *proto.RangeRequest) {
	f, size, _, err := u.lib.OpenContent(req.ContentID)
	if err != nil {
		st.Fail(notShared(req.ContentID))
		return
	}
	defer f.Close()
	if req.Length == 0 || req.Length > u.cfg.MaxRange || req.Offset > size || req.Length > size-req.Offset {
		st.Fail(proto.Errorf(proto.CodeBadRequest, "range %d+%d of %s: the file has %d bytes and a range may be 1 to %d bytes long",
			req.Offset, req.Length, req.ContentID.Short(), size, u.cfg.MaxRange))
		return
	}
	up, err := u.admit(peer, req)
	if err != nil {
		st.Fail(err)
		return
	}
	defer u.release(up)
	defer resetOnDone(ctx, st)()
	if err := u.waitSlot(ctx, st, up); err != nil {
		u.log.Debug("queued requester gone", zap.Stringer("peer", peer), zap.Error(err))
		st.CancelWrite(proto.CodeShutdown)
		st.CancelRead(proto.CodeShutdown)
		return
	}
	if err := u.send(ctx, st, f, up); err != nil {
		log := u.log.Info
		if proto.CodeOf(err) == proto.CodeOK || ctx.Err() != nil {
			log = u.log.Debug // the requester had enough, or we are closing
		}
		log("upload stopped", zap.Stringer("peer", peer), zap.Stringer("content", req.ContentID),
			zap.Uint64("offset", req.Offset), zap.Uint64("length", req.Length), zap.Uint64("sent", up.sent.Load()), zap.Error(err))
		code := proto.CodeOf(err)
		switch {
		case ctx.Err() != nil: // Close, or the connection is gone
			code = proto.CodeShutdown
		case errors.Is(err, os.ErrDeadlineExceeded):
			code = proto.CodeTimeout
		}
		st.CancelWrite(code)
		st.CancelRead(code)
		return
	}
	st.Finish()
}

// send writes the RangeReply and the bytes, paced by the rate cap, each
// write bounded by the stall timeout.
func (u *Uploader) send(ctx context.Context, st *session.Stream, f *os.File, up *upload) error {
	_ = st.SetWriteDeadline(time.Now().Add(u.cfg.StallTimeout))
	if err := st.Send(&proto.RangeReply{Offset: up.offset, Length: up.length}); err != nil {
		return err
	}
	bp := u.bufs.Get().(*[]byte)
	defer u.bufs.Put(bp)
	buf := *bp
	off, left := up.offset, up.length
	for left > 0 {
		n := int(min(left, uint64(len(buf))))
		if u.bucket != nil {
			if err := u.bucket.wait(ctx, n); err != nil {
				return err
			}
		}
		if k, err := f.ReadAt(buf[:n], int64(off)); k < n {
			return proto.Errorf(proto.CodeInternal, "reading the shared file at %d: %v (changed on disk?)", off, err)
		}
		_ = st.SetWriteDeadline(time.Now().Add(u.cfg.StallTimeout))
		if _, err := st.Write(buf[:n]); err != nil {
			return err
		}
		off += uint64(n)
		left -= uint64(n)
		up.sent.Add(uint64(n))
		up.tally.bytes.Add(uint64(n))
		u.total.Add(uint64(n))
	}
	return nil
}

// Pace waits until n more bytes may be sent under the upload cap (at once
// without one), taking them from the bucket every upload shares. Other
// uploads of the node's, such as a bandwidth probe, go through it so the
// cap shows in what they measure. It fails only when ctx ends.
func (u *Uploader) Pace(ctx context.Context, n int) error {
	if u.bucket == nil {
		return ctx.Err()
	}
	return u.bucket.wait(ctx, n)
}

// admit gives the request a slot or a queue place.
func (u *Uploader) admit(peer proto.PeerID, req *proto.RangeRequest) (*upload, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, proto.Errorf(proto.CodeShutdown, "uploads are shutting down; ask another holder")
	}
	if u.perPeer[peer] >= u.cfg.PerPeer {
		return nil, proto.Errorf(proto.CodeRateLimited, "you already have %d requests here; wait for one to finish", u.perPeer[peer])
	}
	up := &upload{peer: peer, cid: req.ContentID, offset: req.Offset, length: req.Length,
		granted: make(chan struct{}), moved: make(chan struct{}, 1)}
	switch {
	case len(u.active) < u.cfg.Slots && len(u.queue) == 0:
		u.grantLocked(up)
	case len(u.queue) >= u.cfg.QueueLen:
		return nil, proto.Errorf(proto.CodeFull, "upload queue full (%d waiting for %d slots); try another holder or later", len(u.queue), u.cfg.Slots)
	default:
		u.queue = append(u.queue, up)
	}
	u.perPeer[peer]++
	up.tally = u.tallyLocked(peer)
	return up, nil
}

func (u *Uploader) grantLocked(up *upload) {
	up.inActive = true
	up.started = time.Now()
	u.active[up] = struct{}{}
	close(up.granted)
}

// tallyLocked returns peer's byte counter, forgetting the peer idle longest
// when the table is full.
func (u *Uploader) tallyLocked(peer proto.PeerID) *peerTotal {
	now := time.Now()
	if t, ok := u.peers[peer]; ok {
		t.last = now
		return t
	}
	if len(u.peers) >= maxPeerTotals {
		var oldest proto.PeerID
		var at time.Time
		for p, t := range u.peers {
			if at.IsZero() || t.last.Before(at) {
				oldest, at = p, t.last
			}
		}
		delete(u.peers, oldest)
	}
	t := &peerTotal{last: now}
	u.peers[peer] = t
	return t
}

// release ends up: it leaves the queue or frees its slot for the head of
// the queue, and the requests behind it learn their new positions.
func (u *Uploader) release(up *upload) {
	u.mu.Lock()
	defer u.mu.Unlock()
	from := 0
	if up.inActive {
		delete(u.active, up)
		up.inActive = false
		for len(u.active) < u.cfg.Slots && len(u.queue) > 0 {
			next := u.queue[0]
			u.queue = u.queue[1:]
			u.grantLocked(next)
		}
	} else if i := slices.Index(u.queue, up); i >= 0 {
		u.queue = slices.Delete(u.queue, i, i+1)
		from = i
	}
	for _, w := range u.queue[from:] {
		select {
		case w.moved <- struct{}{}:
		default:
		}
	}
	if u.perPeer[up.peer]--; u.perPeer[up.peer] <= 0 {
		delete(u.perPeer, up.peer)
	}
	up.tally.last = time.Now()
}

// position is up's place in the queue (1 = next), or 0 once it has a slot.
func (u *Uploader) position(up *upload) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Index(u.queue, up) + 1
}

// waitSlot waits for up's slot, telling the requester its queue position
// whenever it changes and every QueueRefresh.
func (u *Uploader) waitSlot(ctx context.Context, st *session.Stream, up *upload) error {
	refresh := time.NewTicker(u.cfg.QueueRefresh)
	defer refresh.Stop()
	last := -1
	for {
		select {
		case <-up.granted:
			return nil
		default:
		}
		if pos := u.position(up); pos > 0 && pos != last {
			if err := u.sendQueued(st, pos); err != nil {
				return err
			}
			last = pos
		}
		select {
		case <-up.granted:
			return ctx.Err() // a slot freed by Close is not taken
		case <-up.moved:
		case <-refresh.C:
			last = -1 // say it again
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (u *Uploader) sendQueued(st *session.Stream, pos int) error {
	_ = st.SetWriteDeadline(time.Now().Add(u.cfg.StallTimeout))
	return st.Send(&proto.Queued{Position: uint32(pos), Slots: uint32(u.cfg.Slots)})
}

// UploadStatus is what an Uploader is doing.
type UploadStatus struct {
	Slots      int              `json:"slots"`
	QueueLen   int              `json:"queue_len"` // capacity of the queue
	Queued     int              `json:"queued"`    // requests waiting for a slot now
	Active     []ActiveUpload   `json:"active"`
	BytesTotal uint64           `json:"bytes_total"` // bytes sent since NewUploader
	MaxRate    int64            `json:"max_rate"`    // bytes per second, 0 = no cap
	Peers      []PeerUploadInfo `json:"peers"`       // bytes sent per peer, most first
}

// ActiveUpload is one range being sent.
type ActiveUpload struct {
	Peer      proto.PeerID    `json:"peer"`
	ContentID proto.ContentID `json:"content_id"`
	Offset    uint64          `json:"offset"`
	Length    uint64          `json:"length"`
	Bytes     uint64          `json:"bytes"`
	RateBps   float64         `json:"rate_bps"`
	StartedAt time.Time       `json:"started_at"`
}

// PeerUploadInfo is how much was sent to one peer (the most recent
// maxPeerTotals peers are remembered).
type PeerUploadInfo struct {
	Peer  proto.PeerID `json:"peer"`
	Bytes uint64       `json:"bytes"`
}

// Status returns slots, active uploads, queue length, totals and the cap.
func (u *Uploader) Status() UploadStatus {
	now := time.Now()
	u.mu.Lock()
	s := UploadStatus{Slots: u.cfg.Slots, QueueLen: u.cfg.QueueLen, Queued: len(u.queue),
		BytesTotal: u.total.Load(), MaxRate: u.cfg.MaxRate}
	for up := range u.active {
		a := ActiveUpload{Peer: up.peer, ContentID: up.cid, Offset: up.offset, Length: up.length,
			Bytes: up.sent.Load(), StartedAt: up.started}
		if el := now.Sub(up.started).Seconds(); el > 0 {
			a.RateBps = float64(a.Bytes) / el
		}
		s.Active = append(s.Active, a)
	}
	for p, t := range u.peers {
		s.Peers = append(s.Peers, PeerUploadInfo{Peer: p, Bytes: t.bytes.Load()})
	}
	u.mu.Unlock()
	slices.SortFunc(s.Active, func(a, b ActiveUpload) int { return a.StartedAt.Compare(b.StartedAt) })
	slices.SortFunc(s.Peers, func(a, b PeerUploadInfo) int {
		if a.Bytes != b.Bytes {
			if a.Bytes > b.Bytes {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Peer[:], b.Peer[:])
	})
	return s
}

// Close refuses new requests, ends the ones in progress (their streams are
// reset with CodeShutdown) and waits for every HandleStream call to return.
func (u *Uploader) Close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.stop()
	u.wg.Wait()
}
