//go:build linux

package awstest

import "syscall"

// sysProcAttr puts the emulator in its own process group (so Stop can kill
// the group) and asks the kernel to SIGKILL it when the test binary dies.
// Pdeathsig fires when the OS thread that started the child exits; Go keeps
// threads alive unless a goroutine exits while locked to one, which this
// package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
