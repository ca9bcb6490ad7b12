package shares

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config says what a Library shares and where it keeps its hash cache. The
// zero value is valid: it shares nothing and keeps no cache on disk.
type Config struct {
	// Dirs are the share folders. Every regular file below them is shared,
	// except hidden files and folders (name starting with "."), partial
	// downloads (PartSuffix), empty files and files whose names Strata
	// cannot announce (see proto.ValidateEntry). Each must exist and be a
	// directory; no folder may be listed twice or inside another.
	Dirs []string

	// StateDir is where the hash cache (CacheFile) lives; created if
	// missing. Empty means no cache on disk: every start hashes everything.
	// If it lies inside a share folder it is not shared.
	StateDir string

	// Logger receives scan summaries and per-file problems. Nil means none.
	Logger *zap.Logger

	// HashWorkers is how many files are hashed at once. Zero means
	// DefaultHashWorkers(). Use 1 for a folder on a spinning disk.
	HashWorkers int

	// ProgressInterval is the least time between two calls of a Scan's
	// progress function (there is always one more at the end). Zero means
	// 100 ms.
	ProgressInterval time.Duration

	// now is the clock; tests replace it. Nil means time.Now.
	now func() time.Time
}

const defaultProgressInterval = 100 * time.Millisecond

// DefaultHashWorkers is the default number of files hashed at once: one per
// CPU Go may use, at most 4 (reading more files at once than that only
// makes the disk seek).
func DefaultHashWorkers() int {
	return min(runtime.GOMAXPROCS(0), 4)
}

// DefaultConfig returns a Config with every default filled in and no share
// folders.
func DefaultConfig() Config {
	var c Config
	c.populate()
	return c
}

// populate fills in defaults, in this one place.
func (c *Config) populate() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.HashWorkers <= 0 {
		c.HashWorkers = DefaultHashWorkers()
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = defaultProgressInterval
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// shareRoot is a share folder after validation.
type shareRoot struct {
	dir  string // as configured, for messages
	path string // absolute, symlinks resolved
}

// validate checks the share folders and the state folder and returns the
// share folders resolved. It changes nothing on disk. Errors say which
// folder is wrong and what to do.
func (c *Config) validate() ([]shareRoot, error) {
	roots := make([]shareRoot, 0, len(c.Dirs))
	for _, d := range c.Dirs {
		if strings.TrimSpace(d) == "" {
			return nil, errors.New("shares: empty share folder name in Dirs; remove it")
		}
		p, err := resolve(d)
		if err != nil {
			return nil, fmt.Errorf("shares: share folder %q: %w; create it or remove it from the share list", d, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("shares: share folder %q: %w; check its permissions", d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("shares: share folder %q is a file, not a folder; list the folder that holds it", d)
		}
		for _, r := range roots {
			if r.path == p {
				return nil, fmt.Errorf("shares: share folders %q and %q are the same folder; list it once", r.dir, d)
			}
			if within(r.path, p) {
				return nil, fmt.Errorf("shares: share folder %q is inside share folder %q; list only %q", d, r.dir, r.dir)
			}
			if within(p, r.path) {
				return nil, fmt.Errorf("shares: share folder %q is inside share folder %q; list only %q", r.dir, d, d)
			}
		}
		roots = append(roots, shareRoot{dir: d, path: p})
	}
	if c.StateDir != "" {
		if fi, err := os.Stat(c.StateDir); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("shares: state folder %q is a file; choose a folder for Strata's state", c.StateDir)
		}
	}
	return roots, nil
}

// resolve returns the absolute path of p with symlinks resolved.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether path p lies strictly inside folder dir (both clean
// and absolute).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
