//go:build unix

package transfer

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writeVec writes the buffers back to back at off with as few system calls
// as it can (pwritev; one request to the disk for a run of pieces).
func writeVec(f *os.File, iovs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for len(iovs) > 0 {
		var n int
		var werr error
		if cerr := rc.Control(func(fd uintptr) { n, werr = unix.Pwritev(int(fd), iovs, off) }); cerr != nil {
			return cerr
		}
		if werr != nil {
			return werr
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 && len(iovs) > 0 {
			k := min(n, len(iovs[0]))
			iovs[0] = iovs[0][k:]
			n -= k
			if len(iovs[0]) == 0 {
				iovs = iovs[1:]
			}
		}
	}
	return nil
}
