//go:build linux && !arm

package transfer

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). Writeback
// then runs beside the download instead of all in the final fsync. Errors
// are ignored: the fsyncs that follow are what durability rests on.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
		_ = syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite)
	})
}
