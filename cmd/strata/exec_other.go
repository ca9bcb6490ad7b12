//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// execSelf runs bin args... and waits: this system cannot replace a
// process.
func execSelf(bin string, args []string) error {
	c := exec.Command(bin, args...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	return c.Run()
}
