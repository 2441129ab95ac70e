package harness

import (
	"context"
	"log"
	"os"
	"sync"
	"time"
)

// Command is the harness's TB for a command (the benchmark, the dashboard run): it logs, collects cleanups and
// runs them once at the end, or at the first fatal error.
type Command struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	once     sync.Once
}

// NewCommand returns a Command named name whose context ends after timeout.
func NewCommand(name string, timeout time.Duration) *Command {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return &Command{name: name, ctx: ctx, cancel: cancel}
}

func (r *Command) Helper()                           {}
func (r *Command) Name() string                      { return r.name }
func (r *Command) Context() context.Context          { return r.ctx }
func (r *Command) Logf(format string, args ...any)   { log.Printf(format, args...) }
func (r *Command) Errorf(format string, args ...any) { r.fail(); log.Printf(format, args...) }
func (r *Command) Fatalf(format string, args ...any) {
	r.fail()
	log.Printf(format, args...)
	r.Finish()
	os.Exit(1)
}
func (r *Command) Skipf(format string, args ...any) {
	log.Printf("cannot run: "+format, args...)
	r.Finish()
	os.Exit(2)
}

func (r *Command) fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *Command) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Command) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// Finish runs the cleanups (last first) and stops the suite, once.
func (r *Command) Finish() {
	r.once.Do(func() {
		r.mu.Lock()
		cs := r.cleanups
		r.cleanups = nil
		r.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
		Shutdown(r.Failed())
		r.cancel()
	})
}
