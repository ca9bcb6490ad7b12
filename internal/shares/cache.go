package shares

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/proto"
)

// CacheFile is the name of the hash cache in Config.StateDir.
//
// Format (all integers big-endian):
//
//	magic "strata hashcache" (16 bytes) | version uint32 (1) | count uint32
//	count × entry
//	BLAKE3-256 of everything above (32 bytes)
//
//	entry: pathLen uint16 | path | size uint64 | mtime ns int64 | hashedAt ns int64 |
//	       dev uint64 | inode uint64 | content ID [32] |
//	       media uint8 | bitrate uint32 | sample rate uint32 | duration uint32 |
//	       artistLen uint8 | artist | titleLen uint8 | title | albumLen uint8 | album |
//	       NumPieces(size) piece hashes [32]
//
// Every length is checked against the bytes left in the file before
// anything is allocated, the checksum catches torn or corrupt files, and
// every entry's pieces must hash to its content ID. A file failing any check
// is discarded as a whole: the cache is only ever a shortcut.
const CacheFile = "hashcache.bin"

const (
	cacheMagic   = "strata hashcache"
	cacheVersion = 1
	// maxCacheFile bounds the cache file read: 1 GiB holds the piece hashes
	// of 8 TiB of shared files.
	maxCacheFile = 1 << 30
	// cacheTempPrefix started the temporary files of saves before they went
	// through atomicfile; leftovers of a crash (either name) are removed by
	// Open.
	cacheTempPrefix = CacheFile + ".tmp"
)

// loadCache reads the cache file at path. A missing file gives an empty
// cache and no error.
func loadCache(path string) (map[string]*record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*record{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeCache(f, fi.Size())
}

// decodeCache reads a cache of size bytes from r.
func decodeCache(r io.Reader, size int64) (map[string]*record, error) {
	const trailer = 32
	if size > maxCacheFile {
		return nil, fmt.Errorf("%d bytes, over the cap of %d", size, maxCacheFile)
	}
	if size < int64(len(cacheMagic))+8+trailer {
		return nil, fmt.Errorf("%d bytes, too short to be a hash cache", size)
	}
	h := blake3.New()
	br := bufio.NewReaderSize(r, 256<<10)
	d := &cacheDecoder{r: bufio.NewReaderSize(io.TeeReader(io.LimitReader(br, size-trailer), h), 256<<10), left: size - trailer}

	if magic := d.bytes(len(cacheMagic)); d.err == nil && string(magic) != cacheMagic {
		return nil, errors.New("not a Strata hash cache (bad magic)")
	}
	if v := d.u32(); d.err == nil && v != cacheVersion {
		return nil, fmt.Errorf("hash cache version %d, this build reads %d", v, cacheVersion)
	}
	count := d.u32()
	// An entry takes at least 107 bytes; a count the file cannot hold is corrupt.
	const minEntry = 2 + 5*8 + 32 + 1 + 3*4 + 3
	if d.err == nil && int64(count)*minEntry > d.left {
		return nil, fmt.Errorf("claims %d entries in %d bytes", count, d.left)
	}
	recs := make(map[string]*record, min(int(count), 1<<16))
	for i := 0; i < int(count) && d.err == nil; i++ {
		r := d.record()
		if d.err != nil {
			break
		}
		if err := proto.VerifyPieces(r.entry.ContentID, r.size, r.pieces); err != nil {
			return nil, fmt.Errorf("entry %q: %v", r.path, err)
		}
		recs[r.path] = r
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.left != 0 {
		return nil, fmt.Errorf("%d bytes after the last entry", d.left)
	}
	var sum [trailer]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, fmt.Errorf("reading checksum: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return nil, errors.New("checksum mismatch (torn or corrupt file)")
	}
	return recs, nil
}

// cacheDecoder reads the cache format, refusing any length larger than the
// bytes left. The first error sticks.
type cacheDecoder struct {
	r    *bufio.Reader
	left int64
	err  error
}

func (d *cacheDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if int64(n) > d.left {
		d.err = fmt.Errorf("field of %d bytes with %d left (truncated or corrupt)", n, d.left)
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.err = err
		return nil
	}
	d.left -= int64(n)
	return b
}

func (d *cacheDecoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *cacheDecoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *cacheDecoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *cacheDecoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *cacheDecoder) str8() string  { return string(d.bytes(int(d.u8()))) }
func (d *cacheDecoder) str16() string { return string(d.bytes(int(d.u16()))) }

func (d *cacheDecoder) record() *record {
	r := &record{root: -1}
	r.path = d.str16()
	r.size = d.u64()
	r.modNs = int64(d.u64())
	r.hashedAt = int64(d.u64())
	r.id.dev = d.u64()
	r.id.ino = d.u64()
	copy(r.entry.ContentID[:], d.bytes(32))
	r.entry.Media = proto.MediaType(d.u8())
	r.entry.Bitrate = d.u32()
	r.entry.SampleRate = d.u32()
	r.entry.Duration = d.u32()
	r.entry.Artist = d.str8()
	r.entry.Title = d.str8()
	r.entry.Album = d.str8()
	if d.err != nil {
		return nil
	}
	n := proto.NumPieces(r.size)
	if n < 0 || int64(n) > d.left/32 {
		d.err = fmt.Errorf("entry %q: %d pieces with %d bytes left (truncated or corrupt)", r.path, n, d.left)
		return nil
	}
	raw := d.bytes(32 * n)
	if d.err != nil {
		return nil
	}
	r.pieces = make([]proto.PieceHash, n)
	for i := range r.pieces {
		copy(r.pieces[i][:], raw[32*i:])
	}
	r.entry.Size = r.size
	r.entry.Name = filepath.Base(r.path)
	return r
}

// saveCache writes recs to path atomically: a temporary file in the same
// folder, fsynced, renamed over path, and the folder fsynced, so a crash
// leaves either the old cache or the new one.
func saveCache(path string, recs map[string]*record) error {
	return atomicfile.Write(path, 0o600, func(w io.Writer) error { return encodeCache(w, recs) })
}

// encodeCache writes recs in the cache format, checksum last.
func encodeCache(out io.Writer, recs map[string]*record) error {
	paths := make([]string, 0, len(recs))
	for p, r := range recs {
		if len(p) <= 0xFFFF && r != nil {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)

	h := blake3.New()
	w := bufio.NewWriterSize(io.MultiWriter(out, h), 256<<10)
	var b []byte
	b = append(b, cacheMagic...)
	b = binary.BigEndian.AppendUint32(b, cacheVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(paths)))
	for _, p := range paths {
		r := recs[p]
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
		b = binary.BigEndian.AppendUint64(b, r.size)
		b = binary.BigEndian.AppendUint64(b, uint64(r.modNs))
		b = binary.BigEndian.AppendUint64(b, uint64(r.hashedAt))
		b = binary.BigEndian.AppendUint64(b, r.id.dev)
		b = binary.BigEndian.AppendUint64(b, r.id.ino)
		b = append(b, r.entry.ContentID[:]...)
		b = append(b, byte(r.entry.Media))
		b = binary.BigEndian.AppendUint32(b, r.entry.Bitrate)
		b = binary.BigEndian.AppendUint32(b, r.entry.SampleRate)
		b = binary.BigEndian.AppendUint32(b, r.entry.Duration)
		for _, s := range []string{r.entry.Artist, r.entry.Title, r.entry.Album} {
			s = s[:min(len(s), 255)] // tags are cut to proto.MaxTagLen already
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		b = b[:0]
		for i := range r.pieces {
			if _, err := w.Write(r.pieces[i][:]); err != nil {
				return err
			}
		}
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := out.Write(h.Sum(nil))
	return err
}

// removeStaleTemps deletes temporary files left by a save that crashed.
func removeStaleTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if (strings.HasPrefix(e.Name(), cacheTempPrefix) || strings.HasPrefix(e.Name(), atomicfile.TempPrefix(CacheFile))) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
