package lab

import "syscall"

// childAttr puts a child in its own process group (a Ctrl-C in the
// terminal reaches the lab, which stops its children in order) and has the
// kernel kill it if the lab dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
