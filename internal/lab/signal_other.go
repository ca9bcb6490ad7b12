//go:build !unix

package lab

import (
	"errors"
	"os"
	"syscall"
)

func terminate(p *os.Process) error { return p.Kill() }
func freeze(*os.Process) error {
	return errors.New("freezing a process (a cut link) needs a Unix system (SIGSTOP)")
}
func thaw(*os.Process) error { return nil }

func childAttr() *syscall.SysProcAttr { return nil }
