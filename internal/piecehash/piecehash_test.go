package piecehash

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/strata-p2p/strata/proto"
)

// pieces returns whole pieces of different kinds of content.
func pieces() map[string][]byte {
	out := map[string][]byte{}
	zero := make([]byte, proto.PieceSize)
	out["zeros"] = zero
	ones := make([]byte, proto.PieceSize)
	for i := range ones {
		ones[i] = 0xFF
	}
	out["ones"] = ones
	count := make([]byte, proto.PieceSize)
	for i := range count {
		count[i] = byte(i % 251) // BLAKE3's own test input pattern
	}
	out["counting"] = count
	for seed := range uint64(3) {
		b := make([]byte, proto.PieceSize)
		_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
		out["random"+string(rune('0'+seed))] = b
	}
	return out
}

func TestSumIsBLAKE3(t *testing.T) {
	impls := map[string]bool{"generic": false}
	if haveAVX512 {
		impls["avx512"] = true
	} else {
		t.Log("this CPU has no AVX-512: only the Go compressor is checked here")
	}
	for name, b := range pieces() {
		want := proto.PieceHash(blake3.Sum256(b))
		for impl, asm := range impls {
			if got := sumPiece(b, asm); got != want {
				t.Errorf("%s piece, %s: got %x, want BLAKE3 %x", name, impl, got, want)
			}
		}
		if got := Sum(b); got != want {
			t.Errorf("%s piece, Sum: got %x, want %x", name, got, want)
		}
	}
}

// TestSumOtherLengths: anything but a whole piece is proto.HashPiece's.
func TestSumOtherLengths(t *testing.T) {
	b := pieces()["counting"]
	for _, n := range []int{0, 1, 1023, 1024, 1025, 64 << 10, proto.PieceSize - 1} {
		if got, want := Sum(b[:n]), proto.PieceHash(blake3.Sum256(b[:n])); got != want {
			t.Errorf("%d bytes: got %x, want %x", n, got, want)
		}
	}
}

// TestCompress16Lanes checks the assembly against the Go compressor lane
// by lane, with different counters, flags and strides in every lane.
func TestCompress16Lanes(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this CPU: compress16 is compressGeneric here")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for trial := range 50 {
		var p params
		for l := range lanes {
			p.ctrLo[l], p.ctrHi[l] = rng.Uint32(), rng.Uint32()
		}
		for k := range p.flags {
			p.flags[k] = rng.Uint32() & 0x1F
		}
		stride := uintptr(64 * (1 + rng.IntN(40)))
		blocks := uintptr(1 + rng.IntN(16))
		if 15*stride+blocks*64 > uintptr(len(buf)) {
			continue
		}
		var got, want [8][lanes]uint32
		compress16(&buf[trial], stride, blocks, &p, &got)
		compressGeneric(&buf[trial], stride, blocks, &p, &want)
		if got != want {
			t.Fatalf("trial %d (stride %d, %d blocks): assembly and Go differ\n got %x\nwant %x", trial, stride, blocks, got, want)
		}
	}
}

// TestSumRandomPieces compares Sum with BLAKE3 on many random pieces, and
// on pieces that differ from one of them in a single bit (the kernel has
// no data-dependent branches, so coverage-guided fuzzing would add
// nothing to this).
func TestSumRandomPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, proto.PieceSize)
	for trial := range 100 {
		if trial%10 == 0 {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		} else {
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		}
		if got, want := Sum(b), proto.PieceHash(blake3.Sum256(b)); got != want {
			t.Fatalf("trial %d: Sum %x, BLAKE3 %x", trial, got, want)
		}
	}
}

// TestGeneratedAssemblyIsCurrent: compress16_amd64.s is what gen.go
// writes now (run go generate ./internal/piecehash after changing gen.go).
func TestGeneratedAssemblyIsCurrent(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to run gen.go with")
	}
	fresh := filepath.Join(t.TempDir(), "compress16_amd64.s")
	if out, err := exec.Command(goBin, "run", "gen.go", "-o", fresh).CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, out)
	}
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("compress16_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("compress16_amd64.s differs from what gen.go writes: run go generate ./internal/piecehash")
	}
}

// BenchmarkPieceHash: a whole piece with this package beside
// github.com/zeebo/blake3 (proto.HashPiece), same run.
func BenchmarkPieceHash(b *testing.B) {
	buf := pieces()["random0"]
	b.Run("impl=piecehash", func(b *testing.B) {
		b.SetBytes(proto.PieceSize)
		for b.Loop() {
			_ = Sum(buf)
		}
	})
	b.Run("impl=zeebo-blake3", func(b *testing.B) {
		b.SetBytes(proto.PieceSize)
		for b.Loop() {
			_ = proto.HashPiece(buf)
		}
	})
}
