package harness

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// A port lost between FreeAddr and the child's bind: another process answers
// /health on it. The harness must not take that answer for the child's.
func TestStartProcessRefusesAnotherProcessesListener(t *testing.T) {
	t.Parallel()
	stranger, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(stranger) }()
	t.Cleanup(func() { _ = srv.Close() })

	dir := t.TempDir()
	// A child that stays up without binding anything, as one whose bind is
	// yet to fail would.
	bin := filepath.Join(dir, "child.sh")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(t.Context(), procSpec{
		name: "child", role: RoleWorker, bin: bin, addr: stranger.Addr().String(),
		logPath: filepath.Join(dir, "child.log"),
	})
	if err == nil {
		p.Kill()
		t.Fatalf("startProcess took the stranger's /health on %s for the child's", stranger.Addr())
	}
	if !errors.Is(err, errPortTaken) || !addrInUse(err) {
		t.Fatalf("startProcess: %v, want errPortTaken (retried as a port in use)", err)
	}
}
