//go:build unix && !linux

package awstest

import "syscall"

// sysProcAttr puts the emulator in its own process group so Stop can kill the
// group. (No Pdeathsig outside Linux: a killed test binary leaves the
// emulators running.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
