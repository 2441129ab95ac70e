package harness

import "context"

// TB is the part of testing.TB the harness uses. *testing.T satisfies it; the
// benchmark command has its own implementation.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	Context() context.Context
}
