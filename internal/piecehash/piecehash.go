// Package piecehash computes the hash of a whole piece, proto.HashPiece
// (BLAKE3-256), fast. A downloader hashes every byte it receives to check
// it before writing it; on amd64 with AVX-512 this package hashes 16 of a
// piece's 1 KiB chunks at once (one per 32-bit lane), and then 16 of the
// tree's parent nodes at once, level by level. Elsewhere, and for inputs
// that are not a whole piece, it is proto.HashPiece.
//
// The hash is BLAKE3 as its specification defines it (github.com/BLAKE3-
// team/BLAKE3-specs): a piece of 256 chunks is a complete binary tree of
// 255 parent nodes over 256 chunk chaining values; chunk i is compressed
// block by block with counter i, CHUNK_START on its first block and
// CHUNK_END on its last; parents have counter 0 and the PARENT flag, the
// root also ROOT. Tests check every path against github.com/zeebo/blake3.
package piecehash

//go:generate go run gen.go -o compress16_amd64.s

import (
	"encoding/binary"
	"unsafe"

	"github.com/strata-p2p/strata/proto"
)

const (
	chunkSize = 1024
	blockSize = 64
	lanes     = 16
	chunks    = proto.PieceSize / chunkSize // per piece: 256, a power of two

	flagChunkStart = 1 << 0
	flagChunkEnd   = 1 << 1
	flagParent     = 1 << 2
	flagRoot       = 1 << 3
)

// params are what compress16 reads besides the message: each lane's block
// counter (low and high words) and the flags of each block.
type params struct {
	ctrLo [lanes]uint32
	ctrHi [lanes]uint32
	flags [chunkSize / blockSize]uint32
}

var iv = [8]uint32{0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19}

// Sum returns proto.HashPiece(b).
func Sum(b []byte) proto.PieceHash {
	if !haveAVX512 || len(b) != proto.PieceSize {
		return proto.HashPiece(b)
	}
	return sumPiece(b, true)
}

// sumPiece hashes a whole piece with compress16 (asm) or compressGeneric.
// Both run BLAKE3's compression function for 16 lanes: lane l's message is
// the blocks (1 to 16) consecutive 64-byte blocks at in[l*stride:], its
// chaining value starts at the IV, and the chaining values after the last
// block go to out[word][lane]. They are called directly, not through a
// func value, so that the buffers below stay on the stack.
func sumPiece(b []byte, asm bool) proto.PieceHash {
	_ = b[proto.PieceSize-1]
	c := func(in *byte, stride, blocks uintptr, p *params, out *[8][lanes]uint32) {
		if asm {
			compress16(in, stride, blocks, p, out)
		} else {
			compressGeneric(in, stride, blocks, p, out)
		}
	}
	var cvs [chunks][8]uint32 // chaining values of one tree level, in order
	var out [8][lanes]uint32
	var p params
	p.flags[0] = flagChunkStart
	p.flags[len(p.flags)-1] = flagChunkEnd
	for g := 0; g < chunks; g += lanes {
		for l := range lanes {
			p.ctrLo[l] = uint32(g + l)
		}
		c(&b[g*chunkSize], chunkSize, chunkSize/blockSize, &p, &out)
		gather(cvs[g:g+lanes], &out)
	}
	// Parents, a level at a time: node i of the next level is the parent
	// of nodes 2i and 2i+1, whose chaining values are the 64 bytes at
	// cvs[2i:]. The results overwrite nodes already read.
	p = params{}
	p.flags[0] = flagParent
	var pad [2 * lanes][8]uint32 // a level of fewer than 16 parents, padded
	for n := chunks; n > 1; n /= 2 {
		parents := n / 2
		if parents >= lanes {
			for g := 0; g < parents; g += lanes {
				c(words(&cvs[2*g]), blockSize, 1, &p, &out)
				gather(cvs[g:g+lanes], &out)
			}
			continue
		}
		copy(pad[:], cvs[:n])
		if parents == 1 {
			p.flags[0] = flagParent | flagRoot
		}
		c(words(&pad[0]), blockSize, 1, &p, &out)
		gather(cvs[:parents], &out)
	}
	var h proto.PieceHash
	for w := range 8 {
		binary.LittleEndian.PutUint32(h[4*w:], cvs[0][w])
	}
	return h
}

// gather copies lane l's chaining value from out to dst[l].
func gather(dst [][8]uint32, out *[8][lanes]uint32) {
	for l := range dst {
		for w := range 8 {
			dst[l][w] = out[w][l]
		}
	}
}

// words is the first byte of cv, as compress16 reads it (little-endian
// words: amd64, the only place the kernel runs, and compressGeneric reads
// the same way).
func words(cv *[8]uint32) *byte {
	return (*byte)(unsafe.Pointer(cv))
}
