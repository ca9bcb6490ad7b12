//go:build !linux

package transfer

import (
	"errors"
	"os"
)

// directFile is unsupported here: pieces go through the page cache.
type directFile struct{}

// asyncWrites has nothing to hold here.
type asyncWrites struct{}

func (*asyncWrites) close() {}

func openDirect(string, *asyncWrites) *directFile { return nil }

func (*directFile) writeVec([][]byte, int64) error { return errors.ErrUnsupported }

func (*directFile) Close() error { return nil }

// allocPieces returns n ordinary piece buffers.
func allocPieces(n int) ([][]byte, func()) { return heapPieces(n) }

// checkSpace is not checked here: a write that finds the disk full fails.
func checkSpace(*os.File, int64) error { return nil }
