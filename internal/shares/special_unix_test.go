//go:build unix

package shares

import (
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// Pipes and other special files are skipped: reading one would block.
func TestSpecialFilesSkipped(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a"), past)
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.mp3"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	l := open(t, Config{Dirs: []string{dir}})
	scan(t, l)
	if got := names(l.Files()); !slices.Equal(got, []string{"a.txt"}) {
		t.Errorf("Files = %q", got)
	}
	if l.Stats().Skipped.Special != 1 {
		t.Errorf("skipped %+v", l.Stats().Skipped)
	}
}
