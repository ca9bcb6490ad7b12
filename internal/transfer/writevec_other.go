//go:build !unix

package transfer

import "os"

// writeVec writes the buffers back to back at off.
func writeVec(f *os.File, iovs [][]byte, off int64) error {
	for _, b := range iovs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
