package main

import (
	"context"
	"log"
	"os"
	"sync"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// runner is the harness's TB for a command: it logs, collects cleanups and
// runs them once at the end, or at the first fatal error.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	once     sync.Once
}

func newRunner(timeout time.Duration) *runner {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return &runner{ctx: ctx, cancel: cancel}
}

func (r *runner) Helper()                           {}
func (r *runner) Name() string                      { return "dashboard" }
func (r *runner) Context() context.Context          { return r.ctx }
func (r *runner) Logf(format string, args ...any)   { log.Printf(format, args...) }
func (r *runner) Errorf(format string, args ...any) { r.fail(); log.Printf(format, args...) }
func (r *runner) Fatalf(format string, args ...any) {
	r.fail()
	log.Printf(format, args...)
	r.finish()
	os.Exit(1)
}
func (r *runner) Skipf(format string, args ...any) {
	log.Printf("cannot run: "+format, args...)
	r.finish()
	os.Exit(2)
}

func (r *runner) fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// finish runs the cleanups (last first) and stops the suite, once.
func (r *runner) finish() {
	r.once.Do(func() {
		r.mu.Lock()
		cs := r.cleanups
		r.cleanups = nil
		r.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
		harness.Shutdown(r.Failed())
		r.cancel()
	})
}
