package proto

import (
	"encoding/binary"
	"fmt"

	"github.com/zeebo/blake3"
)

// Content IDs
//
// A file is cut into pieces of PieceSize bytes (the last one may be shorter).
// Each piece is hashed with BLAKE3-256 (HashPiece). The file's ContentID is the
// BLAKE3-256 of
//
//	"strata content id v1\x00" || uint64 big-endian size || piece hash 0 || piece hash 1 || ...
//
// (ContentIDOf). The prefix keeps a ContentID from ever equalling a piece hash
// or any other BLAKE3 digest Strata computes; the size pins the length of the
// last piece. A downloader that has the ContentID from a search hit fetches
// the piece-hash list from any holder, checks it with VerifyPieces, and can
// then verify every piece it receives, from whichever source, on its own.
//
// Why BLAKE3 and not SHA-256: BenchmarkPieceHash in content_test.go on the
// reference 2-core Xeon (SHA-NI, AVX-512) hashes 256 KiB pieces at about
// 3,550 MB/s with BLAKE3 (github.com/zeebo/blake3) against about 1,650 MB/s
// with crypto/sha256, on one core. Hashing a share folder is the slow part of
// a first scan, so the faster hash is the one used. Scans and downloads hash
// whole pieces with internal/piecehash: the same hash, with an AVX-512 kernel
// where the CPU has one (about twice github.com/zeebo/blake3 on the reference
// machine).

// PieceSize is the length of every piece but the last, in bytes: 256 KiB.
//
// BLAKE3 runs at the same speed on 64 KiB, 256 KiB and 1 MiB pieces
// (BenchmarkPieceHashSizes), so the size is set by the protocol, not the
// hash: the piece-hash list costs 32 bytes per 256 KiB (1/8192 of the file,
// 512 KiB for a 4 GiB file), and a corrupt piece costs one 256 KiB re-fetch.
// Changing it changes every ContentID; it is part of the content ID version.
const PieceSize = 256 << 10

// PieceHash is the BLAKE3-256 digest of one piece.
type PieceHash [32]byte

// contentIDPrefix is the domain-separation prefix of ContentIDOf.
const contentIDPrefix = "strata content id v1\x00"

// HashPiece returns the hash of one piece. b is at most PieceSize bytes; only
// the last piece of a file is shorter.
func HashPiece(b []byte) PieceHash {
	return PieceHash(blake3.Sum256(b))
}

// ContentIDOf returns the ContentID of a file of size bytes whose pieces hash
// to pieces. It does not check that len(pieces) == NumPieces(size); use
// VerifyPieces on lists received from the network.
func ContentIDOf(size uint64, pieces []PieceHash) ContentID {
	h := blake3.New()
	var hdr [len(contentIDPrefix) + 8]byte
	copy(hdr[:], contentIDPrefix)
	binary.BigEndian.PutUint64(hdr[len(contentIDPrefix):], size)
	_, _ = h.Write(hdr[:]) // hash writes never fail
	for i := range pieces {
		_, _ = h.Write(pieces[i][:])
	}
	var c ContentID
	h.Sum(c[:0])
	return c
}

// NumPieces returns how many pieces a file of size bytes has: 0 for an empty
// file. For sizes whose count does not fit in an int it returns -1, which no
// piece list can match.
func NumPieces(size uint64) int {
	n := size / PieceSize
	if size%PieceSize != 0 {
		n++
	}
	if n > uint64(maxInt) {
		return -1
	}
	return int(n)
}

const maxInt = int(^uint(0) >> 1)

// VerifyPieces checks a piece-hash list received for the file cid of size
// bytes: the right number of pieces, and hashing to cid. A nil error means
// every piece can now be checked against its hash in pieces.
func VerifyPieces(cid ContentID, size uint64, pieces []PieceHash) error {
	if want := NumPieces(size); want < 0 || len(pieces) != want {
		return fmt.Errorf("piece list for %s: %d piece hashes for a %d-byte file, want %d; fetch the list from another source",
			cid.Short(), len(pieces), size, want)
	}
	if got := ContentIDOf(size, pieces); got != cid {
		return fmt.Errorf("piece list for %s: hashes to %s, not the content ID asked for; fetch the list from another source",
			cid.Short(), got.Short())
	}
	return nil
}
