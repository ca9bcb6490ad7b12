//go:build linux

package transfer

import (
	"os"
	"syscall"

	"github.com/strata-p2p/strata/proto"
)

// openDirect opens path for writes that bypass the page cache (O_DIRECT),
// or returns nil where the file system refuses them. Verified pieces go
// to disk without a copy into the page cache and without the kernel's
// writeback later: measured on the reference VM, a 1 GiB download costs
// about a quarter less CPU this way. Direct writes need buffers, offsets
// and lengths aligned to the block size: every piece but the last qualifies
// (PieceSize is a multiple of any block size, buffers come from allocPieces);
// the last piece goes through the ordinary descriptor.
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// allocPieces returns n piece buffers in one anonymous mapping (page
// aligned, as direct writes need) and the function that unmaps it; no
// buffer may be used after that.
func allocPieces(n int) ([][]byte, func()) {
	mem, err := syscall.Mmap(-1, 0, n*proto.PieceSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return heapPieces(n)
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = mem[i*proto.PieceSize : (i+1)*proto.PieceSize : (i+1)*proto.PieceSize]
	}
	return bufs, func() { _ = syscall.Munmap(mem) }
}
