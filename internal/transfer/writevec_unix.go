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
	return writeAll(iovs, off, func(iovs [][]byte, off int64) (n int, err error) {
		if cerr := rc.Control(func(fd uintptr) { n, err = unix.Pwritev(int(fd), iovs, off) }); cerr != nil {
			return 0, cerr
		}
		return n, err
	})
}

// writeAll calls write until all of iovs is written at off. It modifies
// iovs in place.
func writeAll(iovs [][]byte, off int64, write func([][]byte, int64) (int, error)) error {
	for len(iovs) > 0 {
		n, err := write(iovs, off)
		if err != nil {
			return err
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
