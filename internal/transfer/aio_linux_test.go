//go:build linux

package transfer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/strata-p2p/strata/proto"
)

// openDirectTemp opens a fresh file for direct writes through w, or skips
// where the file system refuses O_DIRECT (tmpfs) or the kernel AIO.
func openDirectTemp(t *testing.T, w *asyncWrites, size int64) (*directFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "part")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	d := openDirect(path, w)
	if d == nil {
		t.Skip("the temporary folder's file system refuses O_DIRECT")
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, path
}

func TestDirectWritesThroughAIO(t *testing.T) {
	var w asyncWrites
	defer w.close()
	const pieces = 24
	d, path := openDirectTemp(t, &w, pieces*proto.PieceSize)
	if d.aio == nil {
		t.Skip("no kernel AIO here (io_setup refused): direct writes block, as before")
	}
	bufs, release := allocPieces(pieces)
	defer release()
	want := make([]byte, pieces*proto.PieceSize)
	for i := range bufs {
		for k := range bufs[i] {
			bufs[i][k] = byte(i*7 + k*13)
		}
		copy(want[i*proto.PieceSize:], bufs[i])
	}
	// The context itself takes a write (no silent fallback to pwritev).
	if n, err := d.aio.pwritev(d.fd, bufs[:4], 0); err != nil || n != 4*proto.PieceSize {
		t.Fatalf("AIO write of 4 pieces: %d bytes, %v", n, err)
	}
	// Runs of 4 pieces from 6 goroutines at once: each write waits for its
	// own completion, whatever order the disk finishes them in.
	var wg sync.WaitGroup
	errs := make(chan error, pieces/4)
	for run := 0; run < pieces; run += 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.writeVec(bufs[run:run+4], int64(run)*proto.PieceSize)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file does not hold the pieces written")
	}

	// A misaligned offset is refused with EINVAL, which the storer takes
	// as "write through the page cache instead"; the caller's slices are
	// left as they were for that.
	iovs := [][]byte{bufs[0], bufs[1]}
	if err := d.writeVec(iovs, 100); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("misaligned direct write: got %v, want EINVAL", err)
	}
	if len(iovs[0]) != proto.PieceSize || len(iovs[1]) != proto.PieceSize {
		t.Fatal("a failed write changed the caller's buffers")
	}
}

func TestAsyncWritesAfterClose(t *testing.T) {
	var w asyncWrites
	if w.get() == nil {
		t.Skip("no kernel AIO here")
	}
	w.close()
	if w.get() != nil {
		t.Fatal("a closed Manager's writes set up a new AIO context")
	}
	// Files opened now write synchronously, and still correctly.
	d, path := openDirectTemp(t, &w, proto.PieceSize)
	if d.aio != nil {
		t.Fatal("direct file uses a closed AIO context")
	}
	bufs, release := allocPieces(1)
	defer release()
	bufs[0][0], bufs[0][proto.PieceSize-1] = 1, 2
	if err := d.writeVec(bufs, 0); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, bufs[0]) {
		t.Fatal("the synchronous fallback did not write the piece")
	}
}

// Closing the context sends a write whose completion was not reaped back
// to be written again (resClosed) instead of leaving it parked, and refuses
// new ones; a directFile opened before then writes synchronously.
func TestAIOClosedSendsWritesBack(t *testing.T) {
	var w asyncWrites
	d, path := openDirectTemp(t, &w, proto.PieceSize)
	a := d.aio
	if a == nil {
		t.Skip("no kernel AIO here")
	}
	ch := make(chan int64, 1)
	a.mu.Lock()
	a.waits[99] = ch
	a.mu.Unlock()
	w.close()
	if res := <-ch; res != resClosed {
		t.Fatalf("waiter got %d, want resClosed", res)
	}
	if _, err := a.pwritev(0, [][]byte{{1}}, 0); !errors.Is(err, errAIOClosed) {
		t.Fatalf("write after close: %v", err)
	}
	bufs, release := allocPieces(1)
	defer release()
	bufs[0][7] = 7
	if err := d.writeVec(bufs, 0); err != nil {
		t.Fatalf("write through a closed context: %v", err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, bufs[0]) {
		t.Fatal("the synchronous fallback did not write the piece")
	}
}
