//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// execSelf replaces the process with bin args... (same environment).
func execSelf(bin string, args []string) error {
	argv := append([]string{bin}, args...)
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return fmt.Errorf("running strata %v: %w", args, err)
	}
	return nil
}
