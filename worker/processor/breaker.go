package processor

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// BreakerState is the ledger breaker's state.
type BreakerState string

// Breaker states.
const (
	// BreakerClosed: the ledger answers; processors receive.
	BreakerClosed BreakerState = "closed"
	// BreakerOpen: the ledger failed repeatedly; processors stop receiving
	// while a probe checks, with backoff, whether it answers again.
	BreakerOpen BreakerState = "open"
	// BreakerHalfOpen: a probe succeeded; one processor at a time receives one
	// message, until a ledger call on it answers (closed) or fails (open).
	BreakerHalfOpen BreakerState = "half-open"
)

// breaker stops every processor of a process from receiving while the ledger
// is unreachable, so that messages do not burn their receive counts and land
// in the dead-letter queue during an outage. It opens after threshold
// consecutive transient ledger failures; its run loop then probes with backoff
// and turns it half-open on the first success. A probe is one cheap read: a
// flapping table may answer it and still fail the next write, so half-open
// lets a single processor receive a single message; the first ledger answer
// closes the breaker, a transient failure reopens it at once.
type breaker struct {
	threshold          int
	probe              func(ctx context.Context) error
	probeMin, probeMax time.Duration
	probeTimeout       time.Duration
	log                *zap.Logger
	onChange           func(BreakerState)

	mu       sync.Mutex
	failures int
	state    BreakerState
	trial    bool // half-open: a processor holds the one receive allowed
	// changed is closed and replaced whenever state or trial changes, so Wait
	// can block on it.
	changed chan struct{}
	// opened wakes run when the breaker opens.
	opened chan struct{}
}

func newBreaker(threshold int, probe func(context.Context) error, probeMin, probeMax, probeTimeout time.Duration,
	log *zap.Logger, onChange func(BreakerState)) *breaker {
	return &breaker{
		threshold: threshold, probe: probe, probeMin: probeMin, probeMax: probeMax, probeTimeout: probeTimeout,
		log: log, onChange: onChange, state: BreakerClosed, changed: make(chan struct{}), opened: make(chan struct{}, 1),
	}
}

// State reports the breaker's state.
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// setLocked moves to state s and wakes the waiters. b.mu is held.
func (b *breaker) setLocked(s BreakerState) {
	b.state = s
	b.trial = false
	b.notifyLocked()
	b.onChange(s)
}

func (b *breaker) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Success records a ledger call that the ledger answered. Half-open, it
// closes the breaker.
func (b *breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		b.failures = 0
	case BreakerHalfOpen:
		b.failures = 0
		b.setLocked(BreakerClosed)
		b.log.Info("ledger breaker closed: the ledger answered; processors receive again")
	}
}

// Failure records a transient ledger failure and opens the breaker at the
// threshold, or at once when half-open. It reports whether the breaker is
// open.
func (b *breaker) Failure() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		return true
	case BreakerClosed:
		b.failures++
		if b.failures < b.threshold {
			return false
		}
	}
	b.setLocked(BreakerOpen)
	select {
	case b.opened <- struct{}{}:
	default:
	}
	b.log.Warn("ledger breaker open: processors stop receiving", zap.Int("consecutive_failures", b.failures))
	return true
}

// Wait blocks until the caller may receive: at once when the breaker is
// closed; when it is half-open, until the caller gets the one trial receive,
// which it must hand back with endTrial. trial reports that case. It returns
// ctx's error when ctx ends first.
func (b *breaker) Wait(ctx context.Context) (trial bool, err error) {
	for {
		b.mu.Lock()
		switch {
		case b.state == BreakerClosed:
			b.mu.Unlock()
			return false, nil
		case b.state == BreakerHalfOpen && !b.trial:
			b.trial = true
			b.mu.Unlock()
			return true, nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// endTrial hands back the trial receive Wait gave, once the message it took
// has been dealt with.
func (b *breaker) endTrial() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen && b.trial {
		b.trial = false
		b.notifyLocked()
	}
}

func (b *breaker) halfOpen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != BreakerOpen {
		return
	}
	b.setLocked(BreakerHalfOpen)
	b.log.Info("ledger breaker half-open: the probe succeeded; one processor tries one message")
}

// run probes while the breaker is open, until ctx ends.
func (b *breaker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.opened:
		}
		for n := 1; ; n++ {
			if !sleep(ctx, backoff(n, b.probeMin, b.probeMax)) {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, b.probeTimeout)
			err := b.probe(pctx)
			cancel()
			if err == nil {
				b.halfOpen()
				break
			}
			b.log.Warn("ledger probe failed; breaker stays open", zap.Int("probe", n), zap.Error(err))
		}
	}
}
