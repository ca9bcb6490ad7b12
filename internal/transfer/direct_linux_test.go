package transfer

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/strata-p2p/strata/proto"
)

// TestPieceRingHugePages: the piece ring starts on a huge-page boundary
// and, where the kernel has transparent huge pages, is backed by them.
func TestPieceRingHugePages(t *testing.T) {
	bufs, release := allocPieces(pieceBuffers)
	defer release()
	start := uintptr(unsafe.Pointer(&bufs[0][0]))
	if start%hugePage != 0 {
		t.Fatalf("ring at %#x: not on a %d-byte boundary", start, hugePage)
	}
	for i, b := range bufs {
		if len(b) != proto.PieceSize || uintptr(unsafe.Pointer(&b[0])) != start+uintptr(i*proto.PieceSize) {
			t.Fatalf("buffer %d: %d bytes at %p, want %d bytes at %#x", i, len(b), &b[0], proto.PieceSize, start+uintptr(i*proto.PieceSize))
		}
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1 // fault it in
		}
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages are off here (%q, %v)", strings.TrimSpace(string(mode)), err)
	}
	kb, err := anonHugeKB(start)
	if err != nil {
		t.Fatal(err)
	}
	if kb == 0 {
		t.Fatalf("the ring's mapping holds no huge pages (THP %q)", strings.TrimSpace(string(mode)))
	}
}

// anonHugeKB reads AnonHugePages of the mapping holding addr from
// /proc/self/smaps.
func anonHugeKB(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		var kb int
		if in {
			if n, _ := fmt.Sscanf(line, "AnonHugePages: %d kB", &kb); n == 1 {
				return kb, nil
			}
		}
	}
	return 0, fmt.Errorf("no mapping holds %#x in /proc/self/smaps (%v)", addr, sc.Err())
}
