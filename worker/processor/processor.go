package processor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
)

// Processor states reported by Status.
const (
	StateStarting   = "starting"
	StatePolling    = "polling"
	StateProcessing = "processing"
	StatePaused     = "paused" // the ledger breaker is open
	StateStopping   = "stopping"
	StateStopped    = "stopped"
)

// Message attributes set on a dead-lettered message, besides the original ones.
const (
	DLQAttrError     = "wahook_error"
	DLQAttrReason    = "wahook_reason" // poison or failed
	DLQAttrProcessor = "wahook_processor_id"
	DLQAttrMessageID = "wahook_sqs_message_id"
	DLQAttrAttempt   = "wahook_attempt"
)

// maxReasonLen bounds an error kept in the ledger or a message attribute.
const maxReasonLen = 1024

// maxMessageBytes is SQS's limit on one message: body plus attributes.
const maxMessageBytes = 256 * 1024

// receiveGrace is how long a receive may run past its long-poll wait before it
// is abandoned: a connection dropped without a reset would stall it for
// minutes.
const receiveGrace = 10 * time.Second

// errReceiveTimeout marks a receive abandoned after ReceiveWait+receiveGrace.
var errReceiveTimeout = errors.New("no answer within the long-poll bound")

// Status is one processor's state, in /health/detailed's shape.
type Status struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	ProcessedCount int64      `json:"processed_count"`
	ErrorsCount    int64      `json:"errors_count"`
	InFlight       int64      `json:"in_flight"`
	LastPollAt     *time.Time `json:"last_poll_at"`
}

// processor receives from the queue and handles what it receives, one receive
// batch at a time, the batch's messages concurrently.
type processor struct {
	id      string
	opts    *Options
	deps    *Deps
	metrics *Metrics
	breaker *breaker
	log     *zap.Logger
	del     *deleter
	// hard ends when the shutdown grace period is over; final, a short while
	// later, bounds the writes that record results (see Pool.Run). Both are
	// set by run before anything uses them.
	hard, final context.Context

	state     atomic.Value // string
	processed atomic.Int64
	errs      atomic.Int64
	inFlight  atomic.Int64
	lastPoll  atomic.Int64 // unix nanoseconds; 0 = never
}

func (pr *processor) status() Status {
	s := Status{ID: pr.id, Status: StateStarting, ProcessedCount: pr.processed.Load(), ErrorsCount: pr.errs.Load(),
		InFlight: pr.inFlight.Load()}
	if v, ok := pr.state.Load().(string); ok {
		s.Status = v
	}
	if ns := pr.lastPoll.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		s.LastPollAt = &t
	}
	return s
}

// run receives until stop ends; handlers run under hard, result writes under
// final.
func (pr *processor) run(stop, hard, final context.Context) {
	pr.hard, pr.final = hard, final
	pr.del = newDeleter(pr)
	var deleterDone sync.WaitGroup
	deleterDone.Go(pr.del.run)
	defer func() {
		pr.state.Store(StateStopping)
		pr.del.close()
		deleterDone.Wait()
		pr.state.Store(StateStopped)
	}()

	failures := 0
	for stop.Err() == nil {
		if pr.breaker.State() != BreakerClosed {
			pr.state.Store(StatePaused)
		}
		trial, err := pr.breaker.Wait(stop)
		if err != nil {
			return
		}
		pr.state.Store(StatePolling)
		maxMessages := pr.opts.MaxMessages
		if trial {
			// Half-open: one message tells whether the ledger works again.
			maxMessages = 1
		}
		// Taken before the call: SQS's 12-hour visibility limit runs from the
		// receive, never earlier than this.
		receivedAt := time.Now()
		pr.lastPoll.Store(receivedAt.UnixNano()) // a long poll under way counts
		msgs, err := pr.receive(stop, maxMessages)
		pr.lastPoll.Store(time.Now().UnixNano())
		if err != nil {
			if trial {
				pr.breaker.endTrial()
			}
			if stop.Err() != nil {
				return
			}
			if errors.Is(err, errReceiveTimeout) {
				// Not a backend failure to back off from: poll again at once.
				// Messages the abandoned call may have taken reappear after
				// their visibility timeout.
				pr.metrics.receiveErrors.Inc()
				pr.log.Warn("receive abandoned; polling again", zap.Error(err))
				continue
			}
			failures++
			pr.errs.Add(1)
			pr.metrics.receiveErrors.Inc()
			pr.log.Warn("receive failed", zap.Int("consecutive_failures", failures),
				zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
			sleep(stop, backoff(failures, pr.opts.BackendRetryBase, 10*time.Second))
			continue
		}
		failures = 0
		if len(msgs) > 0 {
			pr.state.Store(StateProcessing)
			pr.metrics.received.Add(float64(len(msgs)))
			var batch sync.WaitGroup
			for _, m := range msgs {
				batch.Go(func() { pr.handle(stop, hard, m, receivedAt) })
			}
			batch.Wait()
		}
		if trial {
			pr.breaker.endTrial()
		}
	}
}

// receive long-polls for up to maxMessages messages, bounded by ReceiveWait
// plus receiveGrace.
func (pr *processor) receive(stop context.Context, maxMessages int) ([]sqstypes.Message, error) {
	ctx, cancel := context.WithTimeout(stop, pr.opts.ReceiveWait+receiveGrace)
	defer cancel()
	out, err := pr.deps.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &pr.opts.QueueURL,
		MaxNumberOfMessages:         int32(maxMessages),
		WaitTimeSeconds:             int32(pr.opts.ReceiveWait / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		if stop.Err() == nil && ctx.Err() != nil {
			return nil, fmt.Errorf("receive from %s: %w (%s): %w", pr.opts.QueueURL, errReceiveTimeout,
				pr.opts.ReceiveWait+receiveGrace, err)
		}
		return nil, fmt.Errorf("receive from %s: %w", pr.opts.QueueURL, err)
	}
	return out.Messages, nil
}

// result records how an event's handling ended.
func (pr *processor) result(r string) {
	pr.metrics.events.WithLabelValues(r).Inc()
	switch r {
	case ResultDone, ResultDuplicate:
		pr.processed.Add(1)
	case ResultFailed, ResultPoison:
		pr.processed.Add(1)
		pr.errs.Add(1)
	case ResultRetry, ResultLeaseLost, ResultBackendError:
		pr.errs.Add(1)
	}
}

// handle takes one message through decode, claim, handler and the write that
// records the handler's result. stop ending means shutdown has begun; hard
// ending means its grace period is over. receivedAt is when the receive began.
func (pr *processor) handle(stop, hard context.Context, m sqstypes.Message, receivedAt time.Time) {
	pr.inFlight.Add(1)
	pr.metrics.inFlight.Inc()
	defer func() {
		pr.inFlight.Add(-1)
		pr.metrics.inFlight.Dec()
	}()
	receipt := aws.ToString(m.ReceiptHandle)
	log := pr.log.With(logging.MessageID(aws.ToString(m.MessageId)))
	body := []byte(aws.ToString(m.Body))
	env, err := envelope.Decode(body)
	if err != nil {
		pr.poison(m, err, log)
		return
	}
	log = log.With(logging.Key(env.Key))
	if stop.Err() != nil {
		// Shutting down before the claim: hand the message to another worker now.
		pr.setVisibility(pr.final, receipt, 0, log)
		return
	}
	if pr.breaker.State() == BreakerOpen {
		// Leave the message: it reappears after its visibility timeout.
		log.Warn("ledger breaker open; leaving the message")
		pr.result(ResultBackendError)
		return
	}

	var claim ledger.Claim
	// One token for every retry of this delivery's claim: a retry after a
	// timeout whose write landed is then recognised as ours, not refused.
	token := rand.Text()
	err = pr.retry(hard, "claim", true, func(ctx context.Context) error {
		c, err := pr.deps.Ledger.Claim(ctx, env.Key, pr.id, token, pr.opts.LeaseDuration)
		claim = c
		return err
	})
	var refused *ledger.ClaimRefusedError
	switch {
	case err == nil:
	case errors.As(err, &refused) && refused.Finished():
		pr.metrics.duplicates.Inc()
		pr.result(ResultDuplicate)
		log.Info("duplicate delivery: event already finished; deleting the message", zap.String("state", string(refused.State)))
		pr.del.add(deletion{receipt: receipt, log: log})
		return
	case errors.As(err, &refused):
		// Another processor holds a live lease: look again when it runs out.
		pr.metrics.claimConflicts.Inc()
		pr.result(ResultConflict)
		wait := visibilitySeconds(time.Until(refused.LeaseUntil), time.Since(receivedAt), 1)
		log.Info("event held by another processor; leaving the message until its lease ends",
			zap.String("owner", refused.Owner), zap.Time("lease_until", refused.LeaseUntil), zap.Int32("visibility_s", wait))
		pr.setVisibility(pr.final, receipt, wait, log)
		return
	case errors.Is(err, ledger.ErrConflict):
		pr.metrics.claimConflicts.Inc()
		pr.result(ResultConflict)
		log.Info("event changing under concurrent claims; leaving the message", zap.Error(err))
		return
	default:
		pr.result(ResultBackendError)
		log.Error("claim failed; leaving the message to reappear", zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
		return
	}

	log = log.With(logging.Attempt(claim.Attempt))
	ev := Event{
		Envelope: env, Body: body, Attempt: claim.Attempt, ProcessorID: pr.id,
		MessageID: aws.ToString(m.MessageId), ReceiveCount: receiveCount(m),
	}
	// The results are recorded even when the grace period is over, within
	// final's short bound.
	w := pr.final
	if claim.Attempt > pr.opts.MaxAttempts {
		// Claimed more often than allowed without a recorded result: earlier
		// runs crashed or lost their leases. Do not run it again.
		pr.fail(w, m, claim, receivedAt, fmt.Errorf("attempts exhausted: attempt %d of %d without a result", claim.Attempt, pr.opts.MaxAttempts), log)
		return
	}
	log.Debug("claimed", zap.Int("receive_count", ev.ReceiveCount))

	lost, herr := pr.invoke(hard, ev, &claim, receipt, receivedAt, log)
	switch {
	case lost:
		pr.metrics.leasesLost.Inc()
		pr.result(ResultLeaseLost)
		log.Warn("lease lost while the handler ran; not completing, not deleting", zap.NamedError("handler_error", herr))
	case herr == nil:
		err := pr.retry(w, "complete", true, func(ctx context.Context) error { return pr.deps.Ledger.Complete(ctx, claim) })
		if pr.ledgerWriteFailed(err, "complete", log) {
			return
		}
		pr.result(ResultDone)
		log.Info("event done")
		pr.del.add(deletion{receipt: receipt, log: log})
	case hard.Err() != nil:
		pr.giveBack(w, claim, receipt, 0, receivedAt, "shutdown: "+herr.Error(), ResultShutdown, log)
	case IsPermanent(herr):
		pr.fail(w, m, claim, receivedAt, herr, log)
	case claim.Attempt >= pr.opts.MaxAttempts:
		pr.fail(w, m, claim, receivedAt, fmt.Errorf("attempts exhausted (%d): %w", claim.Attempt, herr), log)
	case pr.lastReceive(m):
		// Given back, the message would be redriven to the dead-letter queue
		// by SQS with the ledger left queued: dead-letter it ourselves so
		// that ledger and dead-letter queue agree.
		pr.fail(w, m, claim, receivedAt, fmt.Errorf("receive count %d reaches the queue's max receive count %d: %w",
			ev.ReceiveCount, pr.opts.MaxReceiveCount, herr), log)
	default:
		delay, requested := RequestedDelay(herr)
		if !requested {
			delay = backoff(claim.Attempt, pr.opts.RetryBase, pr.opts.RetryMax)
		}
		log.Warn("handler failed; giving the event back to retry", zap.Duration("delay", delay),
			zap.Bool("requested_delay", requested), zap.Error(herr))
		pr.giveBack(w, claim, receipt, max(delay, time.Second), receivedAt, herr.Error(), ResultRetry, log)
	}
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

// invoke runs the handler under the handler timeout, heartbeating while it
// runs. lost reports that a heartbeat found the lease taken over (the
// handler's context was then cancelled).
func (pr *processor) invoke(hard context.Context, ev Event, claim *ledger.Claim, receipt string, receivedAt time.Time,
	log *zap.Logger) (lost bool, err error) {
	hctx, cancel := context.WithCancelCause(hard)
	defer cancel(nil)
	tctx, cancelTimeout := context.WithTimeoutCause(hctx, pr.opts.HandlerTimeout, ErrHandlerTimeout)
	defer cancelTimeout()

	var leaseLost atomic.Bool
	var heartbeat sync.WaitGroup
	hbCtx, stopHeartbeat := context.WithCancel(hard)
	if !pr.opts.DisableHeartbeat {
		heartbeat.Go(func() {
			if pr.heartbeat(hbCtx, claim, receipt, receivedAt, log) {
				leaseLost.Store(true)
				cancel(ErrLeaseLost)
			}
		})
	}
	start := time.Now()
	err = pr.call(tctx, ev, log)
	// Heartbeats stop before anything else happens to the message.
	stopHeartbeat()
	heartbeat.Wait()
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	pr.metrics.handlerDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return leaseLost.Load(), err
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

// heartbeat renews the lease and the message's visibility every third of the
// visibility timeout until ctx ends. It reports whether the lease was lost.
func (pr *processor) heartbeat(ctx context.Context, claim *ledger.Claim, receipt string, receivedAt time.Time, log *zap.Logger) bool {
	t := time.NewTicker(pr.opts.VisibilityTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		err := pr.retry(ctx, "extend", true, func(ctx context.Context) error {
			return pr.deps.Ledger.Extend(ctx, claim, pr.opts.LeaseDuration)
		})
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, ledger.ErrLeaseLost) {
			pr.metrics.heartbeats.WithLabelValues("lease_lost").Inc()
			log.Warn("heartbeat: lease lost; cancelling the handler", zap.Error(err))
			return true
		}
		if err != nil {
			pr.metrics.heartbeats.WithLabelValues("error").Inc()
			log.Warn("heartbeat: extending the lease failed", zap.Error(err))
			continue
		}
		secs := visibilitySeconds(pr.opts.VisibilityTimeout, time.Since(receivedAt), 1)
		if err := pr.changeVisibility(ctx, receipt, secs); err != nil {
			if ctx.Err() != nil {
				return false
			}
			pr.metrics.heartbeats.WithLabelValues("error").Inc()
			log.Warn("heartbeat: extending the visibility failed", zap.Error(err))
			continue
		}
		pr.metrics.heartbeats.WithLabelValues("ok").Inc()
		log.Debug("heartbeat", zap.Time("lease_until", claim.LeaseUntil))
	}
}

// giveBack returns the claim to the ledger and makes the message visible
// again after delay (at most 12 hours after receivedAt, SQS's limit).
func (pr *processor) giveBack(ctx context.Context, claim ledger.Claim, receipt string, delay time.Duration, receivedAt time.Time,
	reason, result string, log *zap.Logger) {
	err := pr.retry(ctx, "give back", true, func(ctx context.Context) error {
		return pr.deps.Ledger.GiveBack(ctx, claim, truncate(reason))
	})
	if pr.ledgerWriteFailed(err, "give back", log) {
		return
	}
	secs := int32(0)
	if delay > 0 {
		secs = visibilitySeconds(delay, time.Since(receivedAt), 1)
	}
	pr.setVisibility(ctx, receipt, secs, log)
	pr.result(result)
	log.Info("event given back", zap.String("result", result), zap.Int32("visible_in_s", secs))
}

// fail dead-letters the message, marks the event failed and deletes the
// message. The dead-letter send comes first: should the ledger write fail, a
// copy too many in the dead-letter queue beats none.
func (pr *processor) fail(ctx context.Context, m sqstypes.Message, claim ledger.Claim, receivedAt time.Time, cause error, log *zap.Logger) {
	reason := truncate(cause.Error())
	if err := pr.deadLetter(ctx, m, ResultFailed, reason, claim.Attempt); err != nil {
		log.Error("dead-letter send failed; giving the event back to try again", zap.NamedError("cause", cause), zap.Error(err))
		pr.giveBack(ctx, claim, aws.ToString(m.ReceiptHandle), backoff(claim.Attempt, pr.opts.RetryBase, pr.opts.RetryMax),
			receivedAt, "dead-letter send failed: "+err.Error(), ResultBackendError, log)
		return
	}
	err := pr.retry(ctx, "fail", true, func(ctx context.Context) error { return pr.deps.Ledger.Fail(ctx, claim, reason) })
	if pr.ledgerWriteFailed(err, "fail", log) {
		return
	}
	pr.result(ResultFailed)
	log.Error("event failed for good; dead-lettered", zap.Error(cause))
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log})
}

// poison dead-letters and deletes a message that is not an envelope: no
// retry can make it one.
func (pr *processor) poison(m sqstypes.Message, cause error, log *zap.Logger) {
	w := pr.final
	log.Error("undecodable message; dead-lettering it", zap.Int("receive_count", receiveCount(m)), zap.Error(cause))
	if err := pr.deadLetter(w, m, ResultPoison, truncate(cause.Error()), 0); err != nil {
		pr.result(ResultBackendError)
		log.Error("dead-letter send failed; leaving the message to reappear", zap.Error(err))
		return
	}
	pr.result(ResultPoison)
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log})
}

// deadLetter sends a copy of m to the dead-letter queue with the reason.
func (pr *processor) deadLetter(ctx context.Context, m sqstypes.Message, kind, reason string, attempt int) error {
	str := func(s string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
	}
	ours := map[string]sqstypes.MessageAttributeValue{
		DLQAttrError:     str(reason),
		DLQAttrReason:    str(kind),
		DLQAttrProcessor: str(pr.id),
		DLQAttrMessageID: str(aws.ToString(m.MessageId)),
		DLQAttrAttempt:   {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(attempt))},
	}
	attrs := deadLetterAttributes(len(aws.ToString(m.Body)), m.MessageAttributes, ours)
	in := &sqs.SendMessageInput{QueueUrl: &pr.opts.DeadLetterURL, MessageBody: m.Body, MessageAttributes: attrs}
	if strings.HasSuffix(pr.opts.DeadLetterURL, ".fifo") {
		sum := sha256.Sum256([]byte(aws.ToString(m.MessageId)))
		in.MessageGroupId = aws.String("wahook-dead-letters")
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:]))
	}
	err := pr.retry(ctx, "dead-letter", false, func(ctx context.Context) error {
		_, err := pr.deps.Queue.SendMessage(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("send to dead-letter queue: %w", err)
	}
	pr.metrics.deadLettered.WithLabelValues(kind).Inc()
	return nil
}

// deadLetterAttributes returns the attributes of a dead-letter copy of a
// bodyLen-byte body: ours plus up to five of the original ones when that fits
// SQS's message limit; else ours alone, the error cut to fit; else, when even
// that cannot fit beside the body, none (the body matters most).
func deadLetterAttributes(bodyLen int, original, ours map[string]sqstypes.MessageAttributeValue) map[string]sqstypes.MessageAttributeValue {
	room := maxMessageBytes - bodyLen
	attrs := maps.Clone(ours)
	// SQS allows 10 attributes; keep up to 5 of the original ones.
	for _, name := range slices.Sorted(maps.Keys(original)) {
		if len(attrs) == len(ours)+5 {
			break
		}
		if _, ok := attrs[name]; !ok {
			attrs[name] = original[name]
		}
	}
	if attributesSize(attrs) <= room {
		return attrs
	}
	attrs = maps.Clone(ours)
	if attributesSize(attrs) <= room {
		return attrs
	}
	errAttr, ok := attrs[DLQAttrError]
	delete(attrs, DLQAttrError)
	rest := attributesSize(attrs)
	if rest > room {
		return nil
	}
	// What is left for the error's value, beside its name and type.
	if left := room - rest - len(DLQAttrError) - len(aws.ToString(errAttr.DataType)); ok && left > 0 {
		v := aws.ToString(errAttr.StringValue)
		if v = strings.ToValidUTF8(v[:min(left, len(v))], ""); v != "" {
			errAttr.StringValue = aws.String(v)
			attrs[DLQAttrError] = errAttr
		}
	}
	return attrs
}

// attributesSize is what SQS counts of message attributes against its limit:
// names, data types and values.
func attributesSize(attrs map[string]sqstypes.MessageAttributeValue) int {
	n := 0
	for name, v := range attrs {
		n += len(name) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
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

// retry calls fn, each call bounded by BackendTimeout, retrying transient
// backend trouble with backoff and jitter. Ledger calls feed the breaker: a
// transient failure counts towards opening it, any answer resets it, and once
// it is open retrying stops. Once the shutdown grace period is over, a call is
// tried once: what is left of final is all the time there is.
func (pr *processor) retry(ctx context.Context, op string, ledgerCall bool, fn func(ctx context.Context) error) error {
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
		if ledgerCall && pr.breaker.Failure() {
			return fmt.Errorf("%s (ledger breaker open): %w", op, err)
		}
		if n >= pr.opts.BackendAttempts || (pr.hard != nil && pr.hard.Err() != nil) ||
			!sleep(ctx, backoff(n, pr.opts.BackendRetryBase, 2*time.Second)) {
			return err
		}
	}
}

func receiveCount(m sqstypes.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

func truncate(s string) string {
	if len(s) <= maxReasonLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxReasonLen], "")
}
