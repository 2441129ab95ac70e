//go:build linux

package awstest

import (
	"net"
	"os/exec"
	"syscall"
	"testing"
)

func TestListenerOwnedBy(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	// A child in a process group of its own: the listener is not its.
	child := exec.Command("sleep", "60")
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	for _, c := range []struct {
		name string
		pgid int
		port int
		want bool
	}{
		{"our own group's listener", syscall.Getpgrp(), port, true},
		{"another group asking about our listener", child.Process.Pid, port, false},
		{"a port nobody listens on", syscall.Getpgrp(), closedPort(t), false},
	} {
		got, err := ListenerOwnedBy(c.pgid, c.port)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: ListenerOwnedBy(%d, %d) = %v, want %v", c.name, c.pgid, c.port, got, c.want)
		}
	}
}

// closedPort is a port that was free a moment ago and has no listener now.
func closedPort(t *testing.T) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
