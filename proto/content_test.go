package proto

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// The expected values below were computed with a second, independent BLAKE3
// implementation (lukechampine.com/blake3) from the construction documented in
// content.go; the "abc" piece hash is the published BLAKE3 test vector.
func TestContentIDKnownAnswers(t *testing.T) {
	abc := HashPiece([]byte("abc"))
	if got, want := hex.EncodeToString(abc[:]), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"; got != want {
		t.Fatalf("HashPiece(abc) = %s, want %s", got, want)
	}

	two := make([]byte, PieceSize+1)
	for i := range two {
		two[i] = byte(i % 251)
	}
	for _, tc := range []struct {
		name   string
		size   uint64
		pieces []PieceHash
		want   string
	}{
		{"abc", 3, []PieceHash{abc}, "2c5341e28035a16aa8a4ccd78421ee821446e0d8b7532770759d2fa7ea2f1c2c"},
		{"empty", 0, nil, "c4c16e3496d2c0ef13f6a37410a7556fe819232453fe7106751220a3c7baad97"},
		{"two pieces", uint64(len(two)), []PieceHash{HashPiece(two[:PieceSize]), HashPiece(two[PieceSize:])},
			"936c8923e77f52271ac7bf3ebadb80c5400bb34185e18ab70ea07b4b75f0e971"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ContentIDOf(tc.size, tc.pieces)
			if got.String() != tc.want {
				t.Fatalf("ContentIDOf = %s, want %s", got, tc.want)
			}
			if err := VerifyPieces(got, tc.size, tc.pieces); err != nil {
				t.Fatalf("VerifyPieces on a good list: %v", err)
			}
		})
	}
}

func TestNumPieces(t *testing.T) {
	for _, tc := range []struct {
		size uint64
		want int
	}{
		{0, 0}, {1, 1}, {PieceSize - 1, 1}, {PieceSize, 1}, {PieceSize + 1, 2},
		{10 * PieceSize, 10}, {^uint64(0), int(^uint64(0)/PieceSize + 1)},
	} {
		if got := NumPieces(tc.size); got != tc.want {
			t.Errorf("NumPieces(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func TestVerifyPiecesRejects(t *testing.T) {
	data := make([]byte, 3*PieceSize-100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var pieces []PieceHash
	for off := 0; off < len(data); off += PieceSize {
		pieces = append(pieces, HashPiece(data[off:min(off+PieceSize, len(data))]))
	}
	size := uint64(len(data))
	cid := ContentIDOf(size, pieces)
	if err := VerifyPieces(cid, size, pieces); err != nil {
		t.Fatalf("good list refused: %v", err)
	}

	for i := range pieces {
		bad := append([]PieceHash(nil), pieces...)
		bad[i][5] ^= 0x01
		if err := VerifyPieces(cid, size, bad); err == nil {
			t.Errorf("flipped bit in piece hash %d accepted", i)
		}
	}
	if err := VerifyPieces(cid, size, pieces[:2]); err == nil || !strings.Contains(err.Error(), "want 3") {
		t.Errorf("short list: err = %v, want a piece-count error", err)
	}
	if err := VerifyPieces(cid, size+1, pieces); err == nil {
		t.Error("wrong size accepted")
	}
	if err := VerifyPieces(cid, 0, nil); err == nil {
		t.Error("empty list accepted for a non-empty file's ID")
	}
	// The empty file: no pieces, and its ID is not the zero ID.
	empty := ContentIDOf(0, nil)
	if empty.IsZero() {
		t.Fatal("empty file has the zero content ID")
	}
	if err := VerifyPieces(empty, 0, nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if err := VerifyPieces(empty, 0, []PieceHash{HashPiece(nil)}); err == nil {
		t.Error("empty file with one piece hash accepted")
	}
}

// A content ID is never a plain hash of the same bytes (domain separation).
func TestContentIDDomainSeparated(t *testing.T) {
	p := HashPiece([]byte("x"))
	if cid := ContentIDOf(1, []PieceHash{p}); PieceHash(cid) == p || PieceHash(cid) == HashPiece(p[:]) {
		t.Fatal("content ID equals a bare piece hash")
	}
}

// BenchmarkPieceHash compares the two candidate piece hashes on one 256 KiB
// piece. Run with -cpu 1 to see single-core speed:
//
//	go test ./proto -run '^$' -bench PieceHash -cpu 1
func BenchmarkPieceHash(b *testing.B) {
	piece := benchPiece(PieceSize)
	b.Run("BLAKE3", func(b *testing.B) {
		b.SetBytes(int64(len(piece)))
		for b.Loop() {
			HashPiece(piece)
		}
	})
	b.Run("SHA256", func(b *testing.B) {
		b.SetBytes(int64(len(piece)))
		for b.Loop() {
			sha256.Sum256(piece)
		}
	})
}

// BenchmarkPieceHashSizes shows BLAKE3's speed does not depend on the piece
// size in the range considered, so PieceSize is chosen on protocol grounds.
func BenchmarkPieceHashSizes(b *testing.B) {
	for _, n := range []int{64 << 10, 256 << 10, 1 << 20} {
		piece := benchPiece(n)
		b.Run(fmt.Sprintf("BLAKE3/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				HashPiece(piece)
			}
		})
	}
}

func benchPiece(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 31)
	}
	return b
}
