package processor

// Heartbeats and visibility: keeping a message hidden and its lease alive while its handler runs.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/ledger"
)

// beats is one message's running heartbeat. It starts at the receive, before
// the claim (a claim slowed by a throttled or slow ledger must not let the
// message reappear), renews the lease once there is a claim, and outlives the
// handler: the write that records the handler's result, and the delete after
// a Complete, may be slower than what is left of the visibility timeout, and
// a message that reappeared meanwhile would be received again (or, once the
// lease lapsed too, claimed and run again). Whoever records the result, or
// acts on a refused claim, stops it before changing the message's visibility
// itself.
type beats struct {
	stopOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	// stopVisibility ends the visibility beats alone (the lease was lost).
	stopVisibility context.CancelFunc
	wg             sync.WaitGroup
	// settling is set once the handler returned: the beats then keep only
	// the message hidden, and their failures are not worth a warning.
	settling atomic.Bool
}

// startBeats starts keeping a received message hidden under ctx, every third
// of the visibility timeout counted from the receive. With heartbeats
// disabled it returns beats that do nothing.
func (pr *processor) startBeats(ctx context.Context, receipt string, receivedAt time.Time, log *zap.Logger) *beats {
	ctx, cancel := context.WithCancel(ctx)
	b := &beats{ctx: ctx, cancel: cancel, stopVisibility: func() {}}
	if pr.opts.DisableHeartbeat {
		return b
	}
	vctx, stopVisibility := context.WithCancel(ctx)
	b.stopVisibility = stopVisibility
	b.wg.Go(func() { pr.visibilityBeats(vctx, receipt, receivedAt, &b.settling, log) })
	return b
}

// renewLease starts renewing claim's lease (on its own copy; the result
// write reads the caller's) until the handler returns. onLost runs when a
// heartbeat finds the lease gone while the handler runs; the visibility
// beats stop then, and the message reappears at its current visibility
// timeout: it is another claim's business now.
func (pr *processor) renewLease(b *beats, claim ledger.Claim, receivedAt time.Time, log *zap.Logger, onLost func()) {
	if pr.opts.DisableHeartbeat {
		return
	}
	b.wg.Go(func() {
		if pr.leaseBeats(b.ctx, &claim, receivedAt, &b.settling, log) {
			b.stopVisibility()
			onLost()
		}
	})
}

// settle marks the handler as returned: the beats go on, quietly, until stop.
func (b *beats) settle() {
	if b != nil {
		b.settling.Store(true)
	}
}

// stop ends the beats and waits for the one in flight; nil and repeated calls
// are fine.
func (b *beats) stop() {
	if b == nil {
		return
	}
	b.stopOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
	})
}

// every calls beat every period, counted from receivedAt (a slow claim may
// have used the first period up: then at once), until ctx ends or beat
// returns false. The visibility and the lease each run on their own: a lease
// write held up by a slow backend must not hold back the visibility change
// that keeps the message hidden (one after the other, an Extend taking 2 s of
// a 3 s visibility timeout let messages reappear and be run again).
func every(ctx context.Context, receivedAt time.Time, period time.Duration, beat func() bool) {
	t := time.NewTimer(max(time.Until(receivedAt.Add(period)), 0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(period)
		if !beat() {
			return
		}
	}
}

// visibilityBeats keeps the message hidden until ctx ends: it is what keeps
// other processors from receiving it, through the claim, the handler, the
// result write and the delete.
func (pr *processor) visibilityBeats(ctx context.Context, receipt string, receivedAt time.Time, settling *atomic.Bool, log *zap.Logger) {
	every(ctx, receivedAt, pr.opts.VisibilityTimeout/3, func() bool {
		secs := visibilitySeconds(pr.opts.VisibilityTimeout, time.Since(receivedAt), 1)
		err := pr.changeVisibility(ctx, receipt, secs)
		switch {
		case err == nil || ctx.Err() != nil:
		case settling.Load():
			// Deleted meanwhile, or the backend's trouble: the result write
			// and the delete report their own.
			log.Debug("heartbeat after the handler: extending the visibility failed", zap.Error(err))
		default:
			pr.metrics.heartbeats.WithLabelValues("error").Inc()
			log.Warn("heartbeat: extending the visibility failed", zap.Error(err))
		}
		return true
	})
}

// leaseBeats extends the lease while the handler runs. It reports whether the
// lease was lost meanwhile; it ends, reporting false, with ctx or once the
// handler returned.
func (pr *processor) leaseBeats(ctx context.Context, claim *ledger.Claim, receivedAt time.Time, settling *atomic.Bool, log *zap.Logger) bool {
	lost := false
	every(ctx, receivedAt, pr.opts.VisibilityTimeout/3, func() bool {
		if settling.Load() {
			// The result write is under way, fenced by owner and attempt,
			// not by the lease's end. An Extend racing every result write
			// would cost a write and, once the result landed, a read that
			// only says so.
			return false
		}
		err := pr.retry(ctx, "extend", true, func(ctx context.Context) error {
			return pr.deps.Ledger.Extend(ctx, claim, pr.opts.LeaseDuration)
		})
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil && settling.Load():
			// The handler returned while this Extend was under way: the
			// result write decides now, fenced on its own, and its landing
			// is what refuses an Extend still retrying (a reply lost on a
			// slow backend). Neither a lost lease nor worth a warning.
			log.Debug("heartbeat: extend refused or failed after the handler returned; the result write decides", zap.Error(err))
			return false
		case errors.Is(err, ledger.ErrLeaseLost):
			pr.metrics.heartbeats.WithLabelValues("lease_lost").Inc()
			log.Warn("heartbeat: lease lost; cancelling the handler", zap.Error(err))
			lost = true
			return false
		case err != nil && time.Now().After(claim.LeaseUntil):
			// No extension confirmed before the lease's end: another processor
			// may hold it now. Stop, or extensions that land unseen (replies
			// lost) would keep the event from everyone for the handler timeout.
			// Counted apart from a refusal: a lapse says the backend did not
			// answer in time, a refusal that another claim took the event.
			pr.metrics.heartbeats.WithLabelValues("lease_lapsed").Inc()
			log.Warn("heartbeat: lease ran out with no extension confirmed; cancelling the handler",
				zap.Time("lease_until", claim.LeaseUntil), zap.Error(err))
			lost = true
			return false
		case err != nil:
			pr.metrics.heartbeats.WithLabelValues("error").Inc()
			log.Warn("heartbeat: extending the lease failed", zap.Error(err))
		default:
			pr.metrics.heartbeats.WithLabelValues("ok").Inc()
			log.Debug("heartbeat", zap.Time("lease_until", claim.LeaseUntil))
		}
		return true
	})
	return lost
}

// setVisibility changes the message's visibility, logging a failure (the
// message then reappears at its current visibility timeout).
func (pr *processor) setVisibility(ctx context.Context, receipt string, secs int32, log *zap.Logger) {
	if err := pr.changeVisibility(ctx, receipt, secs); err != nil {
		log.Warn("changing the message's visibility failed", zap.Int32("visibility_s", secs), zap.Error(err))
	}
}

func (pr *processor) changeVisibility(ctx context.Context, receipt string, secs int32) error {
	return pr.retry(ctx, "change visibility", false, func(ctx context.Context) error {
		_, err := pr.deps.Queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &pr.opts.QueueURL, ReceiptHandle: &receipt, VisibilityTimeout: secs,
		})
		if err != nil {
			return fmt.Errorf("change visibility to %ds: %w", secs, err)
		}
		return nil
	})
}
