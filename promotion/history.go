package promotion

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/atomicfile"
)

// HistoryFile is the name of the session history in the node's state
// directory.
const HistoryFile = "sessions.json"

// maxSessions is how many past sessions History keeps (the newest).
const maxSessions = 64

// historyVersion is the file format; a file with another version is
// ignored (with a warning) and the history starts fresh.
const historyVersion = 1

// Session is one run of the node, from start to end.
type Session struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Len is the session's length.
func (s Session) Len() time.Duration { return max(0, s.End.Sub(s.Start)) }

// historyFile is what is written to disk.
type historyFile struct {
	Version  int       `json:"version"`
	Sessions []Session `json:"sessions"`
	// Current is the session running when the file was written; End is the
	// last time the node recorded itself alive (Touch), so a crash loses at
	// most the time since the last save.
	Current *Session `json:"current,omitempty"`
}

// History is the node's uptime and its past sessions, kept across restarts
// in a small JSON file so a node that restarts keeps credit for how long it
// usually stays (the average session length counts toward the uptime gate).
//
// A missing, unreadable or corrupt file is not an error: History logs a
// warning and starts fresh. It is safe for concurrent use.
type History struct {
	mu      sync.Mutex
	dir     string
	log     *zap.Logger
	past    []Session
	current Session
	ended   bool
}

// LoadHistory reads the history in dir (HistoryFile) and starts a new
// session at now. A session that was running when the file was last saved
// (the node crashed or was killed) is closed at the last time it recorded
// itself alive. An empty dir keeps the history in memory only. log may be
// nil.
func LoadHistory(dir string, now time.Time, log *zap.Logger) *History {
	if log == nil {
		log = zap.NewNop()
	}
	h := &History{dir: dir, log: log, current: Session{Start: now, End: now}}
	if dir == "" {
		return h
	}
	name := filepath.Join(dir, HistoryFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return h
	}
	if err != nil {
		log.Warn("cannot read the session history; starting afresh", zap.String("file", name), zap.Error(err))
		return h
	}
	var f historyFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != historyVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", f.Version, historyVersion)
		}
		log.Warn("session history is corrupt or from another version; starting afresh (it is rewritten at the next save)",
			zap.String("file", name), zap.Error(err))
		return h
	}
	for _, s := range f.Sessions {
		if valid(s, now) {
			h.past = append(h.past, s)
		}
	}
	if f.Current != nil && valid(*f.Current, now) {
		h.past = append(h.past, *f.Current)
	}
	if n := len(h.past); n > maxSessions {
		h.past = h.past[n-maxSessions:]
	}
	return h
}

// valid drops sessions a corrupt or hand-edited file could hold: zero
// times, ends before starts, or times after now.
func valid(s Session, now time.Time) bool {
	return !s.Start.IsZero() && !s.End.Before(s.Start) && !s.End.After(now)
}

// Touch records the node alive at now: the current session runs at least
// until now, even if the node crashes before the next save.
func (h *History) Touch(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ended && now.After(h.current.End) {
		h.current.End = now
	}
}

// End closes the current session at now (a clean shutdown); Save it next.
func (h *History) End(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return
	}
	if now.After(h.current.End) {
		h.current.End = now
	}
	h.ended = true
}

// Uptime is the length of the current session at now.
func (h *History) Uptime(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return h.current.Len()
	}
	return max(0, now.Sub(h.current.Start))
}

// AvgSession is the mean length of the past sessions kept (not counting
// the current one); zero when there are none.
func (h *History) AvgSession() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.past) == 0 {
		return 0
	}
	var sum time.Duration
	for _, s := range h.past {
		sum += s.Len()
	}
	return sum / time.Duration(len(h.past))
}

// Sessions returns the past sessions kept, oldest first.
func (h *History) Sessions() []Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Session(nil), h.past...)
}

// Save writes the history atomically: to a temporary file in the same
// directory, synced, then renamed over the old one, and the directory
// synced, so a crash leaves the old file or the new one, never half of
// one. A history without a directory is not saved.
func (h *History) Save() error {
	h.mu.Lock()
	f := historyFile{Version: historyVersion, Sessions: append([]Session(nil), h.past...)}
	if h.ended {
		f.Sessions = append(f.Sessions, h.current)
		if n := len(f.Sessions); n > maxSessions {
			f.Sessions = f.Sessions[n-maxSessions:]
		}
	} else {
		cur := h.current
		f.Current = &cur
	}
	dir := h.dir
	h.mu.Unlock()
	if dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("session history: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, HistoryFile), b, 0o600); err != nil {
		return fmt.Errorf("saving the session history in %s: %w; check the state directory is writable", dir, err)
	}
	return nil
}
