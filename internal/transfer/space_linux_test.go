//go:build linux

package transfer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-p2p/strata/proto"
)

// A download larger than the free space of its folder fails before any
// range is fetched, saying how much it needed and what to do, and leaves
// no part file behind under the final name. The folder is a 1 MiB tmpfs
// (mounting one needs root: skipped otherwise).
func TestDownloadLargerThanFreeSpace(t *testing.T) {
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })

	r := newRig(t)
	c := newContent(8*proto.PieceSize, 31)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{}, lib, nil)
	r.setHits(h.hit(c, "big.bin"))
	dir := filepath.Join(small, "share")
	cfg, _ := r.managerConfig(dir, filepath.Join(t.TempDir(), "state"))
	m := startManager(t, cfg)
	st, err := m.Get(c.cid, "")
	if err != nil {
		t.Fatal(err)
	}
	final := waitState(t, m, st.ID, 10*time.Second)
	if final.State != StateFailed || !strings.Contains(final.Error, "no room for big.bin (2097152 bytes)") ||
		!strings.Contains(final.Error, "2097152 bytes more are needed") || !strings.Contains(final.Error, "free space in "+dir) {
		t.Fatalf("state %s, error %q; want failed, naming the bytes needed and the folder to free", final.State, final.Error)
	}
	if up := h.up.Status(); up.BytesTotal != 0 {
		t.Errorf("the holder sent %d bytes of a download that cannot fit", up.BytesTotal)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.bin")); err == nil {
		t.Error("a failed download left a file under the final name")
	}
}

// A file system that reports no sizes (ramfs) lets a download go ahead:
// it cannot be told to be full.
func TestCheckSpaceUnknownSizes(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("ramfs", dir, "ramfs", 0, ""); err != nil {
		t.Skipf("cannot mount a ramfs (%v): needs root", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "part"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkSpace(f, 1<<30); err != nil {
		t.Fatalf("checkSpace on ramfs: %v; want no verdict", err)
	}
}
