//go:build !linux

package transfer

import "os"

// openDirect is unsupported here: pieces go through the page cache.
func openDirect(path string) *os.File { return nil }

// allocPieces returns n ordinary piece buffers.
func allocPieces(n int) ([][]byte, func()) { return heapPieces(n) }
