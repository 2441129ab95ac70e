package harness

import (
	"context"
	"time"
)

// PollInterval is how often Eventually evaluates its condition.
const PollInterval = 150 * time.Millisecond

// Eventually evaluates cond until it returns nil, failing the test with the
// last error when timeout passes first. cond describes what is still missing in
// its error, so that a failure says how far things got. It returns how long
// the condition took.
func Eventually(t TB, timeout time.Duration, what string, cond func(ctx context.Context) error) time.Duration {
	t.Helper()
	took, err := Await(t.Context(), timeout, cond)
	if err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
	return took
}

// Await is Eventually without a test: it returns the last error of cond when
// timeout passes or ctx ends first.
func Await(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) (time.Duration, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	var last error
	for {
		err := cond(ctx)
		if err == nil {
			return time.Since(began), nil
		}
		// A check cut short by the deadline says less than the one before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return time.Since(began), last
		case <-tick.C:
		}
	}
}
