package piecehash

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// compressGeneric is compress16 in Go, one lane after another. It lets
// the tree in sumPiece be tested on every machine, and the assembly be
// tested against it.
func compressGeneric(in *byte, stride, blocks uintptr, p *params, out *[8][lanes]uint32) {
	for l := range uintptr(lanes) {
		cv := iv
		for k := range blocks {
			blk := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(in), l*stride+k*blockSize)), blockSize)
			var m [16]uint32
			for i := range m {
				m[i] = binary.LittleEndian.Uint32(blk[4*i:])
			}
			cv = compress(cv, &m, p.ctrLo[l], p.ctrHi[l], blockSize, p.flags[k])
		}
		for w := range 8 {
			out[w][l] = cv[w]
		}
	}
}

// compress is BLAKE3's compression function, returning the first half of
// its output (the chaining value).
func compress(cv [8]uint32, m *[16]uint32, ctrLo, ctrHi, blockLen, flags uint32) [8]uint32 {
	v := [16]uint32{cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
		iv[0], iv[1], iv[2], iv[3], ctrLo, ctrHi, blockLen, flags}
	g := func(a, b, c, d int, x, y uint32) {
		v[a] += v[b] + x
		v[d] = bits.RotateLeft32(v[d]^v[a], -16)
		v[c] += v[d]
		v[b] = bits.RotateLeft32(v[b]^v[c], -12)
		v[a] += v[b] + y
		v[d] = bits.RotateLeft32(v[d]^v[a], -8)
		v[c] += v[d]
		v[b] = bits.RotateLeft32(v[b]^v[c], -7)
	}
	w := *m
	perm := [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}
	for round := range 7 {
		g(0, 4, 8, 12, w[0], w[1])
		g(1, 5, 9, 13, w[2], w[3])
		g(2, 6, 10, 14, w[4], w[5])
		g(3, 7, 11, 15, w[6], w[7])
		g(0, 5, 10, 15, w[8], w[9])
		g(1, 6, 11, 12, w[10], w[11])
		g(2, 7, 8, 13, w[12], w[13])
		g(3, 4, 9, 14, w[14], w[15])
		if round < 6 {
			var next [16]uint32
			for i := range next {
				next[i] = w[perm[i]]
			}
			w = next
		}
	}
	var out [8]uint32
	for i := range out {
		out[i] = v[i] ^ v[i+8]
	}
	return out
}
