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
)

// breaker stops every processor of a process from receiving while the ledger
// is unreachable, so that messages do not burn their receive counts and land
// in the dead-letter queue during an outage. It opens after threshold
// consecutive transient ledger failures; its run loop then probes with backoff
// and closes it on the first success.
type breaker struct {
	threshold          int
	probe              func(ctx context.Context) error
	probeMin, probeMax time.Duration
	probeTimeout       time.Duration
	log                *zap.Logger
	onChange           func(BreakerState)

	mu       sync.Mutex
	failures int
	open     bool
	// closed is closed while the breaker is closed; a fresh channel is made
	// when it opens, so Wait can block on it.
	closed chan struct{}
	// opened wakes run when the breaker opens.
	opened chan struct{}
}

func newBreaker(threshold int, probe func(context.Context) error, probeMin, probeMax, probeTimeout time.Duration,
	log *zap.Logger, onChange func(BreakerState)) *breaker {
	closed := make(chan struct{})
	close(closed)
	return &breaker{
		threshold: threshold, probe: probe, probeMin: probeMin, probeMax: probeMax, probeTimeout: probeTimeout,
		log: log, onChange: onChange, closed: closed, opened: make(chan struct{}, 1),
	}
}

// State reports the breaker's state.
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return BreakerOpen
	}
	return BreakerClosed
}

// Success records a ledger call that worked.
func (b *breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		b.failures = 0
	}
}

// Failure records a transient ledger failure and opens the breaker at the
// threshold. It reports whether the breaker is open.
func (b *breaker) Failure() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return true
	}
	b.failures++
	if b.failures < b.threshold {
		return false
	}
	b.open = true
	b.closed = make(chan struct{})
	select {
	case b.opened <- struct{}{}:
	default:
	}
	b.log.Warn("ledger breaker open: processors stop receiving", zap.Int("consecutive_failures", b.failures))
	b.onChange(BreakerOpen)
	return true
}

// Wait blocks while the breaker is open. It returns ctx's error when ctx ends
// first.
func (b *breaker) Wait(ctx context.Context) error {
	b.mu.Lock()
	ch := b.closed
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *breaker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open = false
	b.failures = 0
	close(b.closed)
	b.log.Info("ledger breaker closed: processors receive again")
	b.onChange(BreakerClosed)
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
				b.close()
				break
			}
			b.log.Warn("ledger probe failed; breaker stays open", zap.Int("probe", n), zap.Error(err))
		}
	}
}
