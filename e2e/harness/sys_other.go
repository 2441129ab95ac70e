//go:build unix && !linux

package harness

import "syscall"

// sysProcAttr puts a child in its own process group (kill -9 takes the group).
// Without Pdeathsig, a killed test binary may leave children behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
