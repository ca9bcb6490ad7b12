package transfer

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/strata-p2p/strata/proto"
)

// benchFile is a large source file written once per test process (so it is
// in the page cache for every run that reads it) and removed by TestMain.
type benchFile struct {
	path   string
	size   int64
	pieces []proto.PieceHash
	cid    proto.ContentID
}

// benchFiles holds the source files of this test process.
type benchFiles struct {
	mu    sync.Mutex
	dir   string
	files map[int64]*benchFile
}

// sources is the process's set of benchmark source files: test-only state,
// created lazily so plain `go test` writes nothing.
var sources benchFiles

// sourceFile returns a file of size pseudo-random bytes, writing it on
// first use.
func sourceFile(b *testing.B, size int64) *benchFile {
	b.Helper()
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if f := sources.files[size]; f != nil {
		return f
	}
	if sources.dir == "" {
		dir, err := os.MkdirTemp("", "strata-transfer-bench-")
		if err != nil {
			b.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // nginx may read as another user
			b.Fatal(err)
		}
		sources.dir, sources.files = dir, map[int64]*benchFile{}
	}
	f := &benchFile{path: filepath.Join(sources.dir, "source-"+strconv.FormatInt(size, 10)+".bin"), size: size}
	out, err := os.OpenFile(f.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	rng := rand.NewChaCha8([32]byte{byte(size >> 20), 7})
	buf := make([]byte, proto.PieceSize)
	for left := size; left > 0; left -= int64(len(buf)) {
		p := buf[:min(left, int64(len(buf)))]
		_, _ = rng.Read(p)
		f.pieces = append(f.pieces, proto.HashPiece(p))
		if _, err := w.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	f.cid = proto.ContentIDOf(uint64(size), f.pieces)
	sources.files[size] = f
	return f
}

// cleanupBenchFiles removes the source files (TestMain calls it).
func cleanupBenchFiles() {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if sources.dir != "" {
		_ = os.RemoveAll(sources.dir)
	}
}

// lib returns a Library serving f.
func (f *benchFile) lib() *testLib {
	return newTestLib().addWithPieces(f.cid, f.path, uint64(f.size), f.pieces)
}

func (f *benchFile) hit(h *holderHost, name string) proto.Hit {
	return proto.Hit{Entry: proto.FileEntry{ContentID: f.cid, Name: name, Size: uint64(f.size)}, Holder: h.info()}
}
