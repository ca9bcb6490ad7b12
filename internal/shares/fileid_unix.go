//go:build unix

package shares

import (
	"io/fs"
	"syscall"
)

// fileIDOf returns the device and inode of a file, which survive a rename.
func fileIDOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}
