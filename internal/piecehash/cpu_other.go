//go:build !amd64 || purego

package piecehash

const haveAVX512 = false

func compress16(in *byte, stride, blocks uintptr, p *params, out *[8][lanes]uint32) {
	compressGeneric(in, stride, blocks, p, out)
}
