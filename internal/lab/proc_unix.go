//go:build unix && !linux

package lab

import "syscall"

// childAttr puts a child in its own process group, so that a Ctrl-C in the
// terminal reaches the lab, which stops its children in order.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
