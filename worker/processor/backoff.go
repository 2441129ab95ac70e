package processor

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxVisibility is SQS's largest visibility timeout, counted from the
// message's receive.
const maxVisibility = 12 * time.Hour

// backoff returns base × 2^(n-1), at most ceiling, with "equal jitter": a
// random point in its upper half, so that retries of many events spread out
// yet never come much sooner than asked.
func backoff(n int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}

// visibilitySeconds turns a delay into a visibility timeout for SQS: whole
// seconds rounded up, at least minSeconds, and no later than 12 hours after
// the receive, sinceReceive ago (SQS refuses more).
func visibilitySeconds(d, sinceReceive time.Duration, minSeconds int32) int32 {
	limit := (maxVisibility - sinceReceive) / time.Second // whole seconds, rounded down
	s := min((max(d, 0)+time.Second-1)/time.Second, limit)
	return max(int32(s), minSeconds)
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
