//go:build amd64 && !purego

package piecehash

import "golang.org/x/sys/cpu"

// haveAVX512 says whether compress16 may run: the CPU has AVX-512F and
// the operating system saves its registers (x/sys/cpu checks both).
var haveAVX512 = cpu.X86.HasAVX512F

// compress16 is the AVX-512 kernel (compress16_amd64.s); blocks must be
// 1 to 16.
//
//go:noescape
func compress16(in *byte, stride, blocks uintptr, p *params, out *[8][lanes]uint32)
