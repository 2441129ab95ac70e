//go:build linux

package harness

import "syscall"

// sysProcAttr puts a child in its own process group (kill -9 takes the group)
// and has the kernel kill it when the test binary dies, so that no ingest or
// worker outlives a crashed test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
