package processor

// One message's lifecycle: decode, claim, handler, and the write that records its result.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/tracing"
)

// handle takes one message through decode, claim, handler and the write that
// records the handler's result. stop ending means shutdown has begun; hard
// ending means its grace period is over. receivedAt is when the receive began.
// finished reports that the event is done (or was already finished) and its
// message deleted: only then may a FIFO group's next message be handled.
func (pr *processor) handle(stop, hard context.Context, m sqstypes.Message, receivedAt time.Time) (finished bool) {
	pr.inFlight.Add(1)
	pr.metrics.inFlight.Inc()
	defer func() {
		pr.inFlight.Add(-1)
		pr.metrics.inFlight.Dec()
	}()
	hard, span := pr.startProcess(hard, m)
	defer span.End()
	receipt := aws.ToString(m.ReceiptHandle)
	log := pr.log.With(logging.MessageID(aws.ToString(m.MessageId)))
	body := []byte(aws.ToString(m.Body))
	env, err := envelope.Decode(body)
	if err != nil {
		pr.poison(m, err, log)
		return false
	}
	span.SetAttributes(tracing.AttrEventKey.String(env.Key), tracing.AttrEventKind.String(string(env.Kind)))
	log = log.With(logging.Key(env.Key))
	if stop.Err() != nil {
		// Shutting down before the claim: hand the message to another worker
		// once no receive of this pool is open to take it back (see polls).
		select {
		case <-pr.polls.Idle():
		case <-hard.Done():
		}
		pr.setVisibility(pr.final, receipt, 0, log)
		return false
	}
	if pr.breaker.State() == BreakerOpen {
		// Leave the message: it reappears after its visibility timeout.
		log.Warn("ledger breaker open; leaving the message")
		pr.result(ResultBackendError)
		pr.resendIfLast(m, env, log)
		return false
	}

	// One token for every retry of this delivery's claim: a retry after a
	// timeout whose write landed is then recognised as ours, not refused.
	token := rand.Text()
	hb := pr.startBeats(hard, receipt, receivedAt, log)
	claimCtx, claimSpan := pr.startSpan(hard, "claim")
	claim, err := pr.claim(claimCtx, m, env, token, log)
	endSpan(claimSpan, err)
	if err != nil {
		// Every path below acts on the message itself.
		hb.stop()
	}
	var refused *ledger.ClaimRefusedError
	switch {
	case err == nil:
	case errors.Is(err, ledger.ErrExpired):
		pr.expired(m, env, err, log)
		return
	case errors.As(err, &refused) && refused.Finished():
		pr.metrics.duplicates.Inc()
		pr.result(ResultDuplicate)
		log.Info("duplicate delivery: event already finished; deleting the message", zap.String("state", string(refused.State)))
		pr.del.add(deletion{receipt: receipt, log: log, ctx: hard})
		return true
	case errors.As(err, &refused):
		// Another processor holds a live lease: look again when it runs out.
		pr.metrics.claimConflicts.Inc()
		pr.result(ResultConflict)
		wait := visibilitySeconds(time.Until(refused.LeaseUntil), time.Since(receivedAt), 1)
		log.Info("event held by another processor; leaving the message until its lease ends",
			zap.String("owner", refused.Owner), zap.Time("lease_until", refused.LeaseUntil), zap.Int32("visibility_s", wait))
		// At its last receive the message would next be redriven to the DLQ:
		// a fresh copy, due when the lease ends, takes its place (should the
		// holder be gone, it may hold the event's only copy).
		if !pr.resendIfLastAfter(m, env, wait, log) {
			pr.setVisibility(pr.final, receipt, wait, log)
		}
		return false
	case errors.Is(err, ledger.ErrConflict):
		pr.metrics.claimConflicts.Inc()
		pr.result(ResultConflict)
		log.Info("event changing under concurrent claims; leaving the message", zap.Error(err))
		return false
	default:
		pr.result(ResultBackendError)
		log.Error("claim failed; leaving the message to reappear", zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
		pr.resendIfLast(m, env, log)
		return false
	}

	log = log.With(logging.Attempt(claim.Attempt))
	span.SetAttributes(tracing.AttrAttempt.Int(claim.Attempt))
	ev := Event{
		Envelope: env, Body: body, Attempt: claim.Attempt, ProcessorID: pr.id,
		MessageID: aws.ToString(m.MessageId), ReceiveCount: receiveCount(m),
	}
	// The results are recorded even when the grace period is over, within
	// final's short bound.
	w := trace.ContextWithSpan(pr.final, span)
	// Both bounds count within the claim's series: an operator's reopen of
	// a failed event starts a new one (ledger.Claim.SeriesStart).
	if n := claim.Interrupted(); n > pr.opts.MaxInterruptions {
		// Claimed more often than allowed without any recorded result:
		// earlier runs crashed their processes or lost their leases. Do not
		// run it again.
		pr.fail(w, m, claim, hb, receivedAt, fmt.Errorf("interrupted %d times without a result (limit %d): a crash loop, or leases that keep lapsing",
			n, pr.opts.MaxInterruptions), log)
		return false
	}
	log.Debug("claimed", zap.Int("receive_count", ev.ReceiveCount))

	lost, herr := pr.invoke(hard, ev, claim, hb, receivedAt, log)
	// Every path below stops the beats once the result is recorded, before
	// it changes the message's visibility, or hands them to the delete; this
	// is for the paths that record nothing.
	handedOn := false
	defer func() {
		if !handedOn {
			hb.stop()
		}
	}()
	switch {
	case lost && errors.Is(herr, ErrHandlerAbandoned):
		// It may still be at work: recording any result, or handing the
		// message on at once, would race it. Its lease lapses; then another
		// processor takes the event over.
		pr.metrics.abandoned.Inc()
		pr.result(ResultAbandoned)
		log.Error("handler ignored its context past its deadline; abandoned, its lease left to lapse",
			zap.Duration("handler_timeout", pr.opts.HandlerTimeout), zap.Duration("grace", abandonGrace))
	case lost:
		pr.metrics.leasesLost.Inc()
		pr.result(ResultLeaseLost)
		log.Warn("lease lost while the handler ran; not completing, not deleting", zap.NamedError("handler_error", herr))
		// At its last receive, SQS would redrive the message to the DLQ
		// though nothing failed: a fresh copy instead finds the event done,
		// or held, or (its taker gone) claims it again.
		pr.resendIfLast(m, env, log)
	case herr == nil:
		completeCtx, completeSpan := pr.startSpan(w, "complete")
		err := pr.retryResult(completeCtx, "complete", func(ctx context.Context) error { return pr.deps.Ledger.Complete(ctx, claim) })
		endSpan(completeSpan, err)
		if err != nil {
			hb.stop()
		}
		if pr.ledgerWriteFailed(err, "complete", log) {
			// At its last receive the message would be redriven to the DLQ
			// though nothing failed. Only the record failed (the copy finds
			// the claim ours-but-expired and runs the event again, which
			// beats the DLQ) or another claim took the event over (the copy
			// finds it done or held, or, that claim gone, claims it again).
			pr.resendIfLast(m, env, log)
			return false
		}
		pr.result(ResultDone)
		log.Info("event done")
		// The beats keep the message hidden until its delete is answered.
		handedOn = true
		pr.del.add(deletion{receipt: receipt, log: log, ctx: w, done: hb.stop})
		return true
	case hard.Err() != nil:
		pr.giveBack(w, claim, hb, receipt, 0, receivedAt, "shutdown: "+herr.Error(), ResultShutdown, log)
	case IsPermanent(herr):
		pr.fail(w, m, claim, hb, receivedAt, herr, log)
	case claim.Failures+1 >= pr.opts.MaxAttempts:
		pr.fail(w, m, claim, hb, receivedAt, fmt.Errorf("attempts exhausted (%d handler failures of %d allowed): %w",
			claim.Failures+1, pr.opts.MaxAttempts, herr), log)
	case pr.lastReceive(m):
		// Given back, the message would be redriven to the dead-letter queue
		// by SQS with the ledger left queued: dead-letter it ourselves so
		// that ledger and dead-letter queue agree.
		pr.fail(w, m, claim, hb, receivedAt, fmt.Errorf("receive count %d reaches the queue's max receive count %d: %w",
			ev.ReceiveCount, pr.opts.MaxReceiveCount, herr), log)
	default:
		delay, requested := RequestedDelay(herr)
		if !requested {
			delay = backoff(claim.Failures+1, pr.opts.RetryBase, pr.opts.RetryMax)
		}
		log.Warn("handler failed; giving the event back to retry", zap.Duration("delay", delay),
			zap.Bool("requested_delay", requested), zap.Error(herr))
		pr.giveBack(w, claim, hb, receipt, max(delay, time.Second), receivedAt, herr.Error(), ResultRetry, log)
	}
	return false
}

// lastReceive reports whether m may not be received again before SQS
// redrives it: its receive count is at the queue's max receive count less one.
func (pr *processor) lastReceive(m sqstypes.Message) bool {
	return pr.opts.MaxReceiveCount > 0 && receiveCount(m) >= pr.opts.MaxReceiveCount-1
}

// ledgerWriteFailed handles the error of a write that records a result, and
// reports whether there was one.
func (pr *processor) ledgerWriteFailed(err error, op string, log *zap.Logger) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ledger.ErrLeaseLost):
		pr.metrics.leasesLost.Inc()
		pr.result(ResultLeaseLost)
		log.Warn("lease lost before the result was recorded; not deleting", zap.String("op", op), zap.Error(err))
	default:
		// The claim stays ours until its lease runs out; then the event is
		// claimed again.
		pr.result(ResultBackendError)
		log.Error("recording the result failed; the event will be claimed again after its lease",
			zap.String("op", op), zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
	}
	return true
}

// abandonGrace is how long a handler may run on after its context ended
// (deadline, lost lease, shutdown) before it is abandoned. It fits within
// ShutdownWritesTimeout, so shutdown stays bounded.
const abandonGrace = time.Second

// invoke runs the handler under the handler timeout, heartbeating while it
// runs. lost reports that a heartbeat found the lease taken over (the
// handler's context was then cancelled), or that the handler ignored its
// context and was abandoned (err is then ErrHandlerAbandoned); the beats
// have then stopped. Otherwise they go on after the handler returned, until
// the caller has recorded the result (see beats).
func (pr *processor) invoke(hard context.Context, ev Event, claim ledger.Claim, hb *beats, receivedAt time.Time,
	log *zap.Logger) (lost bool, err error) {
	hctx, cancel := context.WithCancelCause(hard)
	defer cancel(nil)
	tctx, cancelTimeout := context.WithTimeoutCause(hctx, pr.opts.HandlerTimeout, ErrHandlerTimeout)
	defer cancelTimeout()

	var leaseLost atomic.Bool
	pr.renewLease(hb, claim, receivedAt, log, func() {
		leaseLost.Store(true)
		cancel(ErrLeaseLost)
	})
	start := time.Now()
	// The handler runs on its own goroutine so that one that ignores its
	// context cannot hold the heartbeats (and so the lease) forever, nor the
	// shutdown. Its owner is this call while it waits; once abandoned, no one
	// can stop it, and the metric says so.
	done := make(chan error, 1)
	go func() { done <- pr.call(tctx, ev, log) }()
	abandoned := false
	select {
	case err = <-done:
	case <-tctx.Done():
		grace := time.NewTimer(abandonGrace)
		select {
		case err = <-done:
		case <-grace.C:
			abandoned = true
			err = fmt.Errorf("%w (%v)", ErrHandlerAbandoned, context.Cause(tctx))
		}
		grace.Stop()
	}
	hb.settle()
	if abandoned {
		// Its lease must lapse: the beats stop here.
		hb.stop()
		return true, err
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	pr.metrics.handlerDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	if leaseLost.Load() {
		hb.stop()
		return true, err
	}
	return false, err
}

// call runs the handler, turning a panic into a retryable error.
func (pr *processor) call(ctx context.Context, ev Event, log *zap.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return pr.deps.Handler.Handle(ctx, ev)
}
