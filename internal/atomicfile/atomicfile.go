// Package atomicfile replaces files so that a crash or a kill leaves either
// the old content or the new, never a mix: the new content goes to a
// temporary file in the same folder, which is fsynced, renamed over the
// target, and the folder is fsynced. Identity keys, the share index's hash
// cache, the host cache, download state and session history are all saved
// this way.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix is how the temporary files for path start ("."+name+".tmp-"),
// for sweeping ones a crash left behind.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// IsTemp reports whether name (a folder entry) is a temporary file of Write.
func IsTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }

// Write replaces path with what fill writes, created with mode perm
// (before any byte is written, so a key is never readable by others). On
// any error the temporary file is removed and path is untouched.
func Write(path string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	_ = SyncDir(dir) // the rename has happened: a folder that cannot sync is not worth failing for
	return nil
}

// WriteFile replaces path with b (see Write).
func WriteFile(path string, b []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// SyncDir fsyncs a folder so a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
