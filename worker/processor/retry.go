package processor

// Bounded retries of backend calls, feeding the ledger breaker.

import (
	"context"
	"fmt"
	"time"

	"github.com/wahook/wahook/shared/awserr"
)

// retry calls fn, each call bounded by BackendTimeout, retrying transient
// backend trouble with backoff and jitter. Ledger calls feed the breaker: a
// transient failure counts towards opening it, any answer resets it, and once
// it is open retrying stops. Once the shutdown grace period is over, a call is
// tried once: what is left of final is all the time there is.
func (pr *processor) retry(ctx context.Context, op string, ledgerCall bool, fn func(ctx context.Context) error) error {
	return pr.retryCall(ctx, op, ledgerCall, ledgerCall, fn)
}

// retryResult is retry for the ledger writes that record a handler's result
// (complete, fail, give back): they feed the breaker but are not cut short
// when it opens. The breaker keeps new messages out; the result of a run that
// already happened is worth every try its own bound allows, for a result
// given up is a handler run again.
func (pr *processor) retryResult(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return pr.retryCall(ctx, op, true, false, fn)
}

func (pr *processor) retryCall(ctx context.Context, op string, ledgerCall, stopWhenOpen bool, fn func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		cctx, cancel := context.WithTimeout(ctx, pr.opts.BackendTimeout)
		err := fn(cctx)
		cancel()
		if err == nil || !awserr.Transient(err) || ctx.Err() != nil {
			if ledgerCall && ctx.Err() == nil {
				pr.breaker.Success() // the ledger answered, even if with a refusal
			}
			return err
		}
		pr.metrics.backendErrors.WithLabelValues(op).Inc()
		if ledgerCall && pr.breaker.Failure() && stopWhenOpen {
			return fmt.Errorf("%s (ledger breaker open): %w", op, err)
		}
		if n >= pr.opts.BackendAttempts || (pr.hard != nil && pr.hard.Err() != nil) ||
			!sleep(ctx, backoff(n, pr.opts.BackendRetryBase, 2*time.Second)) {
			return err
		}
	}
}
