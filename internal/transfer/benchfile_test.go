package transfer

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/strata-p2p/strata/internal/atomicfile"
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
	mu     sync.Mutex
	dir    string
	shared bool // dir is STRATA_BENCH_SOURCES: kept for the next process
	files  map[int64]*benchFile
}

// sources is the process's set of benchmark source files: test-only state,
// created lazily so plain `go test` writes nothing.
var sources benchFiles

// sourceFile returns a file of size pseudo-random bytes, writing it on
// first use. With STRATA_BENCH_SOURCES set to a folder (tools/bench.d/
// transfer.sh sets it, running each implementation in its own process),
// a file an earlier process wrote there is read and hashed instead, so
// every process serves the same bytes, already on disk.
func sourceFile(b testing.TB, size int64) *benchFile {
	b.Helper()
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if f := sources.files[size]; f != nil {
		return f
	}
	if sources.dir == "" {
		if dir := os.Getenv("STRATA_BENCH_SOURCES"); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatalf("STRATA_BENCH_SOURCES: %v", err)
			}
			sources.dir, sources.shared = dir, true
		} else {
			dir, err := os.MkdirTemp("", "strata-transfer-bench-")
			if err != nil {
				b.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil { // nginx may read as another user
				b.Fatal(err)
			}
			sources.dir = dir
		}
		sources.files = map[int64]*benchFile{}
	}
	f := &benchFile{path: filepath.Join(sources.dir, "source-"+strconv.FormatInt(size, 10)+".bin"), size: size}
	if fi, err := os.Stat(f.path); err == nil && fi.Size() == size && sources.shared {
		pieces, err := filePieces(f.path, uint64(size))
		if err != nil {
			b.Fatal(err)
		}
		f.pieces = pieces
	} else {
		f.pieces = writeSource(b, f.path, size)
	}
	f.cid = proto.ContentIDOf(uint64(size), f.pieces)
	sources.files[size] = f
	return f
}

// writeSource writes size pseudo-random bytes to path (fsynced, through
// atomicfile, so a cut-short run leaves no file a later process would
// reuse) and returns their piece hashes. On disk before any timed run:
// otherwise the kernel writes the new file back during the first
// implementation's run, taking CPU and disk from that run only.
func writeSource(b testing.TB, path string, size int64) []proto.PieceHash {
	var pieces []proto.PieceHash
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		rng := rand.NewChaCha8([32]byte{byte(size >> 20), 7})
		buf := make([]byte, proto.PieceSize)
		for left := size; left > 0; left -= int64(len(buf)) {
			p := buf[:min(left, int64(len(buf)))]
			_, _ = rng.Read(p)
			pieces = append(pieces, proto.HashPiece(p))
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return pieces
}

// cleanupBenchFiles removes the source files (TestMain calls it), unless
// they are STRATA_BENCH_SOURCES's, which the caller removes.
func cleanupBenchFiles() {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if sources.dir != "" && !sources.shared {
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
