package processor

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxVisibility is SQS's largest visibility timeout.
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
// seconds rounded up, at least minSeconds, at most 12 hours.
func visibilitySeconds(d time.Duration, minSeconds int32) int32 {
	d = min(d, maxVisibility)
	s := int32((d + time.Second - 1) / time.Second)
	return max(s, minSeconds)
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
