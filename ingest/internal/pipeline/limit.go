package pipeline

import (
	"sync"
	"time"
)

// Bounds of one webhook's admission concurrency (Options.Concurrency is the
// most; these are clipped to it).
const (
	// startConcurrency is where a webhook's admission begins: a small webhook
	// (ten events or fewer, nearly all of them) never needs more.
	startConcurrency = 16
	// minConcurrency is the least a webhook backs off to: a body still makes
	// progress while the backend is slow.
	minConcurrency = 4
)

// limiter is one webhook's admission concurrency, adapted to how fast the
// ledger answers its writes (additive increase, multiplicative decrease, as
// TCP's congestion window):
//
//   - A round is as many answered writes as the limit allows at once. A round
//     that ran at its limit (writes waited for a slot), with its writes answered
//     within the latency target on average and none failed, raises the limit:
//     doubling it until the first back-off, by one after that.
//   - A round whose writes took longer than the target on average, or in which
//     a write failed (a timeout, the SDK's retries of a throttled write running
//     out), halves it, at most once per round.
//
// More writes in flight only help while the backend has idle capacity: a
// 1,000-update body on a table with room for it runs at the most (64 by
// default) and is answered in about half the time it takes at 16, while two
// such bodies on a table without the room (one emulator shared by a parallel
// test suite) back off before their calls — and the same table's MarkQueued and
// renewals — run past their timeouts.
type limiter struct {
	max, min float64
	target   time.Duration

	mu        sync.Mutex
	cond      sync.Cond
	limit     float64
	peak      float64
	inFlight  int
	backedOff bool // slow start is over

	// The round in progress.
	answered  int
	total     time.Duration
	failed    bool
	saturated bool // a write waited for a slot
}

func newLimiter(most int, target time.Duration) *limiter {
	l := &limiter{
		max: float64(most), min: float64(min(minConcurrency, most)), target: target,
		limit: float64(min(startConcurrency, most)),
	}
	l.peak = l.limit
	l.cond.L = &l.mu
	return l
}

// acquire waits for a slot.
func (l *limiter) acquire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.inFlight >= int(l.limit) {
		l.saturated = true
		l.cond.Wait()
	}
	l.inFlight++
}

// release frees a slot taken without a write to observe (a key a read found
// taken).
func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.cond.Signal() // the one waiter: admission's dispatcher
}

// observe frees a slot and counts the write it held: how long the ledger took
// to answer, and whether it failed (a refused conditional write is an answer,
// not a failure).
func (l *limiter) observe(took time.Duration, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.answered++
	l.total += took
	l.failed = l.failed || failed
	if l.answered >= int(l.limit) {
		l.adapt()
	}
	l.cond.Signal() // a slot is free, and the limit may have grown
}

// adapt ends a round. Called with l.mu held.
func (l *limiter) adapt() {
	slow := l.total/time.Duration(l.answered) > l.target
	switch {
	case l.failed || slow:
		l.limit = max(l.min, l.limit/2)
		l.backedOff = true
	case !l.saturated:
		// The webhook did not use its limit: no evidence the backend takes more.
	case l.backedOff:
		l.limit = min(l.max, l.limit+1)
	default:
		l.limit = min(l.max, l.limit*2)
	}
	l.peak = max(l.peak, l.limit)
	l.answered, l.total, l.failed, l.saturated = 0, 0, false, false
}

// state reports the highest limit so far, the limit now, and whether it has
// backed off.
func (l *limiter) state() (peak, now int, backedOff bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.peak), int(l.limit), l.backedOff
}
