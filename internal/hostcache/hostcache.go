// Package hostcache is a node's persisted memory of the supernodes it has
// seen: their peer IDs, addresses, self-reported load and when they were
// last heard of. A leaf refills its attachments from it before asking a
// bootstrap server, and a node whose bootstrap servers are all down joins
// (and a supernode re-finds mesh neighbours) through it.
//
// The cache is bounded (the least recently seen entries go first) and saved
// atomically (temporary file, fsync, rename, fsync of the folder) as JSON
// with a SHA-256 checksum of its entries. A file that is unreadable, fails
// its checksum or is not valid is reported by Load and ignored: the cache
// starts empty and the next Save replaces the file.
package hostcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/proto"
)

// FileName is the cache's file in a node's state directory.
const FileName = "hostcache"

// DefaultMax is how many supernodes a cache keeps unless told otherwise
// (KaZaA handed out 200 at a time).
const DefaultMax = proto.MaxPeers

// maxFileSize bounds what Load reads: 200 entries of 8 addresses of 255
// bytes fit well within it.
const maxFileSize = 4 << 20

const fileVersion = 1

// Entry is one supernode the node has seen.
type Entry struct {
	ID       proto.PeerID `json:"peer_id"`
	Addrs    []string     `json:"addrs"`
	LastSeen time.Time    `json:"last_seen"`
	Load     proto.Load   `json:"load"`
}

// Info is the entry as a PeerInfo of a supernode.
func (e Entry) Info() proto.PeerInfo {
	return proto.PeerInfo{ID: e.ID, Addrs: slices.Clone(e.Addrs), Role: proto.RoleSupernode, Load: e.Load}
}

// Config configures a Cache. The zero value is a cache of DefaultMax
// entries that lives only in memory.
type Config struct {
	// Path is the file the cache loads from and saves to; empty keeps it
	// in memory only.
	Path string
	// Max bounds the entries; past it the least recently seen go first.
	Max int
}

// Cache is safe for concurrent use.
type Cache struct {
	cfg Config

	mu      sync.Mutex
	entries map[proto.PeerID]*Entry
	dirty   bool
}

// New returns an empty cache; Load fills it from cfg.Path.
func New(cfg Config) *Cache {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	return &Cache{cfg: cfg, entries: map[proto.PeerID]*Entry{}}
}

// file is the saved form. Entries is kept raw so its checksum covers the
// exact bytes on disk.
type file struct {
	Version int             `json:"version"`
	Entries json.RawMessage `json:"entries"`
	SHA256  string          `json:"sha256"`
}

// Load reads the cache file. A missing file is not an error. Any other
// problem (unreadable, too large, bad checksum, not valid) is returned so
// the caller can report it, and leaves the cache as it was: a corrupt file
// is never fatal. Entries that are individually invalid (no peer ID, bad
// addresses) are dropped without failing the load.
func (c *Cache) Load() error {
	if c.cfg.Path == "" {
		return nil
	}
	f, err := os.Open(c.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("host cache %s: %w", c.cfg.Path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fmt.Errorf("host cache %s: %w", c.cfg.Path, err)
	}
	entries, err := decode(b)
	if err != nil {
		return fmt.Errorf("host cache %s is corrupt and was ignored (it is rewritten on the next save): %w", c.cfg.Path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		if old, ok := c.entries[e.ID]; !ok || old.LastSeen.Before(e.LastSeen) {
			c.entries[e.ID] = &e
		}
	}
	c.evictLocked()
	return nil
}

// decode parses and checks a saved cache.
func decode(b []byte) ([]Entry, error) {
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("over %d bytes", maxFileSize)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("version %d, want %d", f.Version, fileVersion)
	}
	sum := sha256.Sum256(f.Entries)
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, errors.New("checksum mismatch")
	}
	var raw []Entry
	if err := json.Unmarshal(f.Entries, &raw); err != nil {
		return nil, err
	}
	out := raw[:0]
	for _, e := range raw {
		if e, ok := clean(e); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// clean keeps the valid addresses of e (at most proto.MaxAddrs) and reports
// whether e is usable.
func clean(e Entry) (Entry, bool) {
	if e.ID.IsZero() {
		return e, false
	}
	var addrs []string
	for _, a := range e.Addrs {
		if len(a) > proto.MaxAddrLen || slices.Contains(addrs, a) {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			continue
		}
		addrs = append(addrs, a)
		if len(addrs) == proto.MaxAddrs {
			break
		}
	}
	e.Addrs = addrs
	return e, len(addrs) > 0
}

// Add records supernodes heard of at now (from a bootstrap reply, a
// supernode's PeerList, or an attachment). Leaves, bootstrap servers and
// peers without a usable address are skipped.
func (c *Cache) Add(now time.Time, peers ...proto.PeerInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range peers {
		if p.Role == proto.RoleLeaf || p.Role == proto.RoleBootstrap {
			continue
		}
		e, ok := clean(Entry{ID: p.ID, Addrs: slices.Clone(p.Addrs), LastSeen: now, Load: p.Load})
		if !ok {
			continue
		}
		if old, ok := c.entries[e.ID]; ok && old.LastSeen.After(now) {
			continue
		}
		c.entries[e.ID] = &e
		c.dirty = true
	}
	c.evictLocked()
}

// Forget drops a supernode (one that said it is leaving for good).
func (c *Cache) Forget(id proto.PeerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; ok {
		delete(c.entries, id)
		c.dirty = true
	}
}

func (c *Cache) evictLocked() {
	for len(c.entries) > c.cfg.Max {
		var oldest *Entry
		for _, e := range c.entries {
			if oldest == nil || e.LastSeen.Before(oldest.LastSeen) ||
				(e.LastSeen.Equal(oldest.LastSeen) && bytes.Compare(e.ID[:], oldest.ID[:]) < 0) {
				oldest = e
			}
		}
		delete(c.entries, oldest.ID)
		c.dirty = true
	}
}

// Entries returns a copy of the cache, most recently seen first.
func (c *Cache) Entries() []Entry {
	c.mu.Lock()
	out := make([]Entry, 0, len(c.entries))
	for _, e := range c.entries {
		cp := *e
		cp.Addrs = slices.Clone(e.Addrs)
		out = append(out, cp)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// Infos returns the entries as PeerInfos, most recently seen first.
func (c *Cache) Infos() []proto.PeerInfo {
	es := c.Entries()
	out := make([]proto.PeerInfo, len(es))
	for i, e := range es {
		out[i] = e.Info()
	}
	return out
}

// Len is the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Save writes the cache to its file if it changed since the last save.
func (c *Cache) Save() error {
	if c.cfg.Path == "" {
		return nil
	}
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	c.dirty = false
	c.mu.Unlock()
	entries := c.Entries()
	raw, err := json.Marshal(entries)
	if err == nil {
		sum := sha256.Sum256(raw)
		var b []byte
		b, err = json.Marshal(file{Version: fileVersion, Entries: raw, SHA256: hex.EncodeToString(sum[:])})
		if err == nil {
			err = atomicfile.WriteFile(c.cfg.Path, b, 0o600)
		}
	}
	if err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("saving host cache %s: %w", c.cfg.Path, err)
	}
	return nil
}
