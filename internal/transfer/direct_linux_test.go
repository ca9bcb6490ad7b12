package transfer

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/strata-p2p/strata/proto"
)

// TestPieceRingHugePages: the piece ring starts on a huge-page boundary,
// is advised into transparent huge pages, and (where the kernel has them
// and a free one) is backed by them.
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
	vm, err := mappingOf(start)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(vm.flags), "hg") {
		t.Fatalf("the ring's mapping is not advised into huge pages (VmFlags: %s)", vm.flags)
	}
	mode, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if vm.hugeKB == 0 { // THP off, or no free 2 MiB page at fault time
		t.Skipf("advised, but the kernel gave no huge page (THP %q)", strings.TrimSpace(string(mode)))
	}
}

// mapping is what /proc/self/smaps says of one mapping.
type mapping struct {
	flags  string // VmFlags
	hugeKB int    // AnonHugePages
}

// mappingOf reads the mapping holding addr from /proc/self/smaps.
func mappingOf(addr uintptr) (mapping, error) {
	var m mapping
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			if in {
				break
			}
			in = lo <= addr && addr < hi
			continue
		}
		if !in {
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			m.flags = strings.TrimSpace(v)
		}
		_, _ = fmt.Sscanf(line, "AnonHugePages: %d kB", &m.hugeKB)
	}
	if m.flags == "" {
		return m, fmt.Errorf("no mapping holds %#x in /proc/self/smaps (%v)", addr, sc.Err())
	}
	return m, nil
}
