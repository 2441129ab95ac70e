package pipeline

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// Bounds of the process's admission concurrency (Options.Concurrency is the
// most; these are clipped to it).
const (
	// startConcurrency is where admission begins: a small webhook (ten events
	// or fewer, nearly all of them) never needs more.
	startConcurrency = 16
	// minConcurrency is the least admission backs off to: bodies still make
	// progress while the backend is slow.
	minConcurrency = 4
)

// limiter is the process's admission concurrency: how many Acquire calls all
// of its webhooks have in flight together, adapted to how fast the ledger
// answers them (additive increase, multiplicative decrease, as TCP's
// congestion window):
//
//   - A round is as many answered writes as the limit allows at once. A round
//     that ran at its limit (a write waited for a slot), with its writes
//     answered within the latency target on average and none failed, raises
//     the limit: doubling it until the first back-off, by one after that — or
//     doubling again when the round's writes took under a quarter of the
//     target (the backend has recovered from whatever slowed it).
//   - A round whose writes took longer than the target on average, or in which
//     a write failed (a timeout, the SDK's retries of a throttled write running
//     out), halves it, at most once per round.
//
// More writes in flight only help while the backend has idle capacity: a
// 1,000-update body on a table with room for it runs at the most (64 by
// default) and is answered in about half the time it takes at 16, while on a
// table without the room (one emulator shared by a parallel test suite, a
// provisioned table at its capacity) admission backs off before its calls —
// and the same table's MarkQueued and renewals — run past their timeouts.
//
// The limit is the process's, not one webhook's: fifty concurrent copies of a
// 14-event webhook and fifty of a 1-event one are 750 writes, which
// per-webhook limits all let through at once; on an emulator a loaded machine
// served slowly, thousands of writes (with Meta's retries) then timed out, each
// timeout cost a release, which timed out too, and no retry made progress for
// a minute. Waiting writes are granted slots in the order they
// asked (each webhook has at most one waiting: its admission's dispatcher), so
// webhooks share the slots in turn and a small one is not held behind the
// whole of a large one.
type limiter struct {
	max, min float64
	target   time.Duration
	// onLimit is told each new limit (a gauge).
	onLimit func(int)

	mu       sync.Mutex
	limit    float64
	inFlight int
	waiting  list.List // of chan struct{}, closed when granted a slot
	backoffs int       // back-offs so far; slow start is over after the first

	// The round in progress.
	answered  int
	total     time.Duration
	failed    bool
	saturated bool // a write waited for a slot
}

func newLimiter(most int, target time.Duration, onLimit func(int)) *limiter {
	l := &limiter{
		max: float64(most), min: float64(min(minConcurrency, most)), target: target, onLimit: onLimit,
		limit: float64(min(startConcurrency, most)),
	}
	l.onLimit(int(l.limit))
	return l
}

// errSlotWait: no slot came free within the wait acquire was given.
var errSlotWait = errors.New("no admission slot came free in time")

// acquire waits for a slot, at most for within and until ctx ends. A free
// slot is taken without a timer: the wait is only timed when there is one.
func (l *limiter) acquire(ctx context.Context, within time.Duration) error {
	l.mu.Lock()
	if l.inFlight < int(l.limit) && l.waiting.Len() == 0 {
		l.inFlight++
		l.mu.Unlock()
		return nil
	}
	l.saturated = true
	granted := make(chan struct{})
	e := l.waiting.PushBack(granted)
	l.mu.Unlock()

	timer := time.NewTimer(within)
	defer timer.Stop()
	var err error
	select {
	case <-granted:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errSlotWait
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-granted: // granted meanwhile: pass the slot on
		l.inFlight--
		l.grant()
	default:
		l.waiting.Remove(e)
	}
	return err
}

// grant hands free slots to the writes waiting longest. Called with l.mu held.
func (l *limiter) grant() {
	for l.inFlight < int(l.limit) && l.waiting.Len() > 0 {
		close(l.waiting.Remove(l.waiting.Front()).(chan struct{}))
		l.inFlight++
	}
}

// release frees a slot taken without a write to observe (a key a read found
// taken).
func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.grant()
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
	l.grant() // a slot is free, and the limit may have grown
}

// adapt ends a round. Called with l.mu held.
func (l *limiter) adapt() {
	mean := l.total / time.Duration(l.answered)
	was := l.limit
	switch {
	case l.failed || mean > l.target:
		l.limit = max(l.min, l.limit/2)
		l.backoffs++
	case !l.saturated:
		// The webhooks did not use the limit: no evidence the backend takes more.
	case l.backoffs == 0 || mean < l.target/4:
		l.limit = min(l.max, l.limit*2)
	default:
		l.limit = min(l.max, l.limit+1)
	}
	if l.limit != was {
		l.onLimit(int(l.limit))
	}
	l.answered, l.total, l.failed, l.saturated = 0, 0, false, false
}

// state reports the limit now and how many times it has backed off.
func (l *limiter) state() (now, backoffs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit), l.backoffs
}
