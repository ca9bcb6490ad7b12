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
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

// Finder searches the overlay for holders of cid.
type Finder func(ctx context.Context, cid proto.ContentID) ([]proto.Hit, error)

// Dialer connects to peer (expecting its peer ID) and runs the hello. The
// Manager closes the session when it is done with that source.
type Dialer func(ctx context.Context, peer proto.PeerInfo) (*session.Session, error)

// ManagerConfig configures a Manager. Dir, StateDir, Find and Dial are
// required; other zero fields take the defaults of DefaultManagerConfig.
type ManagerConfig struct {
	// Dir is where finished downloads go: a share folder, so finished files
	// become shared. Part files live there too, hidden. Created if missing.
	Dir string
	// StateDir holds partial-download state (StateDir/partial/<cid>.state).
	// Created if missing.
	StateDir string
	// Find searches the overlay for holders; Dial connects to one.
	Find Finder
	Dial Dialer
	// Self is our own peer ID: hits naming it are skipped.
	Self proto.PeerID
	// MaxSources is how many holders one download fetches from at once.
	MaxSources int
	// ChunkPieces is how many pieces one range request asks for; a source
	// fast enough to deliver that in under 50 ms gets ranges up to four
	// times longer (fewer requests and streams per byte).
	ChunkPieces int
	// StallTimeout drops a source that sends nothing for this long (while
	// connecting, queued or sending).
	StallTimeout time.Duration
	// RefindInterval is how often Find runs again while a download has
	// fewer than MaxSources sources.
	RefindInterval time.Duration
	// CheckpointInterval is how often the state file is saved (after an
	// fsync of the part file). Progress since the last checkpoint is not
	// lost on a crash either: resuming re-verifies what is in the part file.
	CheckpointInterval time.Duration
	// MaxAttempts is how many times a source that failed without lying
	// (stalled, truncated, connection lost, busy) is tried in one run.
	MaxAttempts int
	// Have reports whether cid is already in the library, and where; such
	// content is not fetched. Nil means never.
	Have func(cid proto.ContentID) (path string, ok bool)
	// OnComplete is called once per finished download, after the file has
	// its final name, with the verified piece hashes (the node adds it to
	// its library without hashing it again). Nil means nothing to do.
	OnComplete func(path string, cid proto.ContentID, pieces []proto.PieceHash)
	// PathOf tells how a session from Dial reaches its peer (direct, push,
	// punch, relay and the relay's limits), for status. Nil means direct.
	PathOf func(*session.Session) Path
	// Logger receives a line per download event. Nil means none.
	Logger *zap.Logger
	// Now is the clock for status times and rates. Nil means time.Now.
	Now func() time.Time

	// pageCacheOnly turns direct writes off (tests of the other path).
	pageCacheOnly bool
}

// DefaultManagerConfig returns the defaults (no folders, no Find or Dial);
// they are stated only here.
func DefaultManagerConfig() ManagerConfig {
	return ManagerConfig{
		MaxSources:         4,
		ChunkPieces:        16,
		StallTimeout:       10 * time.Second,
		RefindInterval:     10 * time.Second,
		CheckpointInterval: 5 * time.Second,
		MaxAttempts:        3,
	}
}

func (c ManagerConfig) populate() ManagerConfig {
	d := DefaultManagerConfig()
	if c.MaxSources <= 0 {
		c.MaxSources = d.MaxSources
	}
	if c.ChunkPieces <= 0 {
		c.ChunkPieces = d.ChunkPieces
	}
	c.ChunkPieces = min(c.ChunkPieces, int(DefaultUploaderConfig().MaxRange/proto.PieceSize))
	if c.StallTimeout <= 0 {
		c.StallTimeout = d.StallTimeout
	}
	if c.RefindInterval <= 0 {
		c.RefindInterval = d.RefindInterval
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c ManagerConfig) validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("transfer: no download folder (ManagerConfig.Dir); set it to a share folder"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("transfer: no state folder (ManagerConfig.StateDir); set it to the node's state folder"))
	}
	if c.Find == nil || c.Dial == nil {
		errs = append(errs, errors.New("transfer: ManagerConfig needs Find and Dial (the node's search and dial functions)"))
	}
	return errors.Join(errs...)
}

// Download states.
const (
	StateFinding     = "finding"
	StateDownloading = "downloading"
	StateVerifying   = "verifying"
	StateDone        = "done"
	StateFailed      = "failed"
	StateCancelled   = "cancelled"
)

// Source states.
const (
	SourceConnecting = "connecting"
	SourceQueued     = "queued"
	SourceActive     = "active"
	SourceDropped    = "dropped"
)

// DownloadStatus is one download as the control API shows it.
type DownloadStatus struct {
	ID         string          `json:"id"` // the content ID in hex: one download per content
	ContentID  proto.ContentID `json:"content_id"`
	Name       string          `json:"name"`
	Size       uint64          `json:"size"`
	Done       uint64          `json:"done"` // bytes verified and written
	State      string          `json:"state"`
	RateBps    float64         `json:"rate_bps"`    // verified bytes per second over the last few seconds
	ETASeconds float64         `json:"eta_seconds"` // 0 when unknown or done
	Sources    []SourceStatus  `json:"sources"`
	Path       string          `json:"path,omitempty"` // the finished file
	Error      string          `json:"error,omitempty"`
	Relayed    bool            `json:"relayed"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
}

// SourceStatus is one holder a download used.
type SourceStatus struct {
	Peer          proto.PeerInfo `json:"peer"`
	State         string         `json:"state"`
	QueuePosition int            `json:"queue_position,omitempty"`
	Bytes         uint64         `json:"bytes"` // verified bytes received from it
	Reason        string         `json:"reason,omitempty"`
	Path          Path           `json:"path,omitzero"` // how its last session reached it
}

// Path is how a session reaches its peer: Via is "direct", "push" (the
// holder dialled us), "punch" (hole punching) or "relay" (through a
// supernode, which caps the session at MaxBps bytes per second and
// MaxBytes in all).
type Path struct {
	Via      string `json:"via"`
	MaxBps   uint64 `json:"relay_max_bps,omitempty"`
	MaxBytes uint64 `json:"relay_max_bytes,omitempty"`
}

// maxFinished bounds the finished downloads (done, failed, cancelled) kept
// for List; the oldest are forgotten first.
const maxFinished = 100

// Manager runs downloads: it finds holders, fetches from several at once,
// verifies every piece, and keeps partial downloads across restarts.
type Manager struct {
	cfg        ManagerConfig
	log        *zap.Logger
	partialDir string

	mu        sync.Mutex
	ctx       context.Context // nil until Start
	cancel    context.CancelFunc
	closed    bool
	downloads map[string]*download
	wg        sync.WaitGroup // download goroutines
	async     asyncWrites    // direct writes without a blocked thread (Linux)
}

// NewManager checks cfg, creates the folders, and loads the partial
// downloads found in StateDir; they resume on Start. A state file that is
// unreadable is logged and removed (its part file's pieces are re-verified
// if the download is started again).
func NewManager(cfg ManagerConfig) (*Manager, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("transfer: download folder %q: %w; choose a writable folder", cfg.Dir, err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, partialDir: filepath.Join(cfg.StateDir, "partial"), downloads: map[string]*download{}}
	if err := os.MkdirAll(m.partialDir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: state folder %q: %w; choose a writable folder", m.partialDir, err)
	}
	removeStaleTemps(m.partialDir)
	ents, err := os.ReadDir(m.partialDir)
	if err != nil {
		return nil, fmt.Errorf("transfer: reading %s: %w", m.partialDir, err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), stateSuffix) {
			continue
		}
		path := filepath.Join(m.partialDir, e.Name())
		p, err := loadPartial(path)
		if err != nil || e.Name() != p.cid.String()+stateSuffix {
			m.log.Warn("partial download state unreadable; removing it (the download starts over if asked again)",
				zap.String("file", path), zap.Error(err))
			_ = os.Remove(path)
			continue
		}
		d := m.newDownload(p.cid, p.name)
		d.resume(p)
		m.downloads[d.id] = d
		m.log.Info("partial download found", zap.Stringer("content", p.cid), zap.String("name", p.name))
	}
	return m, nil
}

// Start runs the loaded downloads and any Get made before it. Downloads run
// until Close, Cancel or the end of ctx.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx != nil || m.closed {
		return
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	for _, d := range m.downloads {
		if d.pending() {
			m.launchLocked(d)
		}
	}
}

func (m *Manager) launchLocked(d *download) {
	ctx, cancel := context.WithCancel(m.ctx)
	d.mu.Lock()
	d.running, d.cancel, d.done = true, cancel, make(chan struct{})
	d.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		d.run(ctx)
	}()
}

// Get starts downloading cid into Dir, or returns the download of cid that
// already exists. name may be "" (the most common name among the holders'
// hits is used); it must be a plain file name. If Have reports cid, the
// result is a download in state "done" at that path and nothing is fetched.
// A failed or cancelled download of cid is started again (resuming what
// the part file holds).
func (m *Manager) Get(cid proto.ContentID, name string) (DownloadStatus, error) {
	if name != "" {
		if err := checkName(name); err != nil {
			return DownloadStatus{}, fmt.Errorf("transfer: %w", err)
		}
	}
	var havePath string
	var have bool
	if m.cfg.Have != nil {
		havePath, have = m.cfg.Have(cid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return DownloadStatus{}, errors.New("transfer: the download manager is closed")
	}
	id := cid.String()
	if d := m.downloads[id]; d != nil && d.live() {
		return d.status(), nil
	}
	d := m.newDownload(cid, name)
	if have {
		d.mu.Lock()
		d.state, d.path, d.finished = StateDone, havePath, d.started
		d.mu.Unlock()
		m.downloads[id] = d
		m.pruneLocked()
		return d.status(), nil
	}
	if p, err := loadPartial(statePath(m.partialDir, cid)); err == nil {
		d.resume(p)
	}
	m.downloads[id] = d
	if m.ctx != nil {
		m.launchLocked(d)
	}
	m.pruneLocked()
	return d.status(), nil
}

// pruneLocked forgets the oldest finished downloads beyond maxFinished.
func (m *Manager) pruneLocked() {
	var fin []*download
	for _, d := range m.downloads {
		if !d.finishedAt().IsZero() {
			fin = append(fin, d)
		}
	}
	if len(fin) <= maxFinished {
		return
	}
	slices.SortFunc(fin, func(a, b *download) int { return a.finishedAt().Compare(b.finishedAt()) })
	for _, d := range fin[:len(fin)-maxFinished] {
		delete(m.downloads, d.id)
	}
}

// List returns every download, oldest first.
func (m *Manager) List() []DownloadStatus {
	m.mu.Lock()
	ds := make([]*download, 0, len(m.downloads))
	for _, d := range m.downloads {
		ds = append(ds, d)
	}
	m.mu.Unlock()
	out := make([]DownloadStatus, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.status())
	}
	slices.SortFunc(out, func(a, b DownloadStatus) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Status returns the download with the given ID (its content ID in hex).
func (m *Manager) Status(id string) (DownloadStatus, bool) {
	m.mu.Lock()
	d := m.downloads[id]
	m.mu.Unlock()
	if d == nil {
		return DownloadStatus{}, false
	}
	return d.status(), true
}

// Cancel stops the download and removes its partial data (part file and
// state). A finished download cannot be cancelled: delete its file instead.
func (m *Manager) Cancel(id string) error {
	m.mu.Lock()
	d := m.downloads[id]
	m.mu.Unlock()
	if d == nil {
		return fmt.Errorf("transfer: no download %q; List shows the IDs", id)
	}
	d.mu.Lock()
	if d.state == StateDone {
		d.mu.Unlock()
		return fmt.Errorf("transfer: download %s already finished (%s); delete the file to remove it", id, d.path)
	}
	d.cancelled = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == StateDone {
		return fmt.Errorf("transfer: download %s finished before it could be cancelled (%s)", id, d.path)
	}
	var errs []error
	if d.name != "" {
		if err := os.Remove(filepath.Join(m.cfg.Dir, partName(d.name, d.cid))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(statePath(m.partialDir, d.cid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	d.state, d.errMsg, d.finished = StateCancelled, "", m.cfg.Now()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transfer: cancelled %s but could not remove its partial data: %w", id, err)
	}
	m.log.Info("download cancelled", zap.Stringer("content", d.cid))
	return nil
}

// Close stops every download, saves their state, and waits for every
// goroutine. Downloads resume from the saved state with the next Manager.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	cancel := m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	m.async.close()
}
