package processor_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// processorID is "<host>-<pid>-<random>-p<k>".
var processorID = regexp.MustCompile(`^.+-\d+-[0-9a-f]{8}-p\d+$`)

// Copies of one event delivered to two pools (two processes) at once are
// handled once: the losers' claims are refused while the winner's lease is
// live, and their messages deleted as duplicates once it is done.
func TestDuplicatesCompleteOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	const keys, copies = 8, 3
	for i := range keys {
		body := envelopeBody(t, key(i))
		for range copies {
			e.send(body)
		}
	}
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		time.Sleep(200 * time.Millisecond) // long enough for the copies to meet
		return nil
	})
	a := e.start(processor.Options{Processors: 2}, h)
	b := e.start(processor.Options{Processors: 2}, h)

	eventually(t, 20*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
	for i := range keys {
		k := webhook.MessageKey(key(i))
		if runs := inv.of(k); len(runs) != 1 {
			t.Errorf("%s: handler ran %d times, want 1", k, len(runs))
		}
		if it, _ := e.item(k); it.State != ledger.StateDone || it.Attempt != 1 {
			t.Errorf("%s: ledger %s attempt %d, want done attempt 1", k, it.State, it.Attempt)
		}
	}
	done := result(t, a, processor.ResultDone) + result(t, b, processor.ResultDone)
	dups := metric(t, a.reg, "wahook_worker_duplicates_total", nil) + metric(t, b.reg, "wahook_worker_duplicates_total", nil)
	if done != keys || dups != keys*(copies-1) {
		t.Errorf("done %v, duplicates %v; want %d and %d", done, dups, keys, keys*(copies-1))
	}
	if n := e.depth(e.dlqURL); n != 0 {
		t.Errorf("dead-letter queue holds %d messages, want 0", n)
	}
}

// A handler slower than three visibility timeouts keeps its message with
// heartbeats: it is received once and completed once, though another pool
// polls the same queue all along.
func TestHeartbeatKeepsSlowHandlerAlone(t *testing.T) {
	t.Parallel()
	const visibility = 2 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "slow"))
	var inv invocations
	h := sleeper(&inv, 3*visibility+300*time.Millisecond)
	opts := processor.Options{VisibilityTimeout: visibility}
	a := e.start(opts, h)
	b := e.start(opts, h)

	k := webhook.MessageKey("slow")
	eventually(t, 15*time.Second, "the event to be done", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone
	})
	eventually(t, 5*time.Second, "the message to be deleted", func() bool {
		_, deletes, _ := e.queue.counts(id)
		return deletes > 0 && e.depth(e.queueURL) == 0
	})
	receives, deletes, _ := e.queue.counts(id)
	if receives != 1 || deletes != 1 {
		t.Errorf("message received %d and deleted %d times, want 1 and 1", receives, deletes)
	}
	if runs := inv.of(k); len(runs) != 1 {
		t.Errorf("handler ran %d times, want 1", len(runs))
	}
	hb := metric(t, a.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "ok"}) +
		metric(t, b.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "ok"})
	if hb < 8 { // 6.3s of handler / 0.67s
		t.Errorf("%v heartbeats, want at least 8", hb)
	}
}

// Without heartbeats a slow handler's message is redelivered; the second
// claim is refused while the first lease lives, and the event is still
// completed once.
func TestWithoutHeartbeatRedeliveryWaitsForLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	id := e.send(envelopeBody(t, "nohb"))
	var inv invocations
	h := sleeper(&inv, 2500*time.Millisecond)
	opts := processor.Options{VisibilityTimeout: time.Second, LeaseDuration: 4 * time.Second, DisableHeartbeat: true}
	a := e.start(opts, h)
	b := e.start(opts, h)

	k := webhook.MessageKey("nohb")
	eventually(t, 20*time.Second, "the event to be done and the queue drained", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone && e.depth(e.queueURL) == 0
	})
	if runs := inv.of(k); len(runs) != 1 {
		t.Errorf("handler ran %d times, want 1", len(runs))
	}
	if it, _ := e.item(k); it.Attempt != 1 {
		t.Errorf("attempt %d, want 1", it.Attempt)
	}
	receives, _, _ := e.queue.counts(id)
	conflicts := metric(t, a.reg, "wahook_worker_claim_conflicts_total", nil) + metric(t, b.reg, "wahook_worker_claim_conflicts_total", nil)
	if receives < 2 || conflicts < 1 {
		t.Errorf("received %d times with %v claim conflicts; want a redelivery refused at least once", receives, conflicts)
	}
	if hb := metric(t, a.reg, "wahook_worker_heartbeats_total", nil) + metric(t, b.reg, "wahook_worker_heartbeats_total", nil); hb != 0 {
		t.Errorf("%v heartbeats with heartbeats disabled", hb)
	}
}

// A heartbeat that finds the lease taken cancels the handler's context; the
// loser neither completes nor deletes.
func TestLeaseLostCancelsHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	id := e.send(envelopeBody(t, "stolen"))
	k := webhook.MessageKey("stolen")
	started := make(chan processor.Event, 1)
	causes := make(chan error, 1)
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		started <- ev
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	})
	r := e.start(processor.Options{VisibilityTimeout: 2 * time.Second}, h)

	var ev processor.Event
	select {
	case ev = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not start")
	}
	it, _ := e.item(k)
	if it.State != ledger.StateProcessing || it.Owner != ev.ProcessorID || it.Attempt != ev.Attempt || !processorID.MatchString(it.Owner) {
		t.Fatalf("ledger before the theft: %+v; event processor %q attempt %d", it, ev.ProcessorID, ev.Attempt)
	}
	// Another processor takes the key over (as after an expired lease).
	until := time.Now().Add(time.Hour).UnixMilli()
	_, err := e.clients.DynamoDB.PutItem(t.Context(), &dynamodb.PutItemInput{
		TableName: aws.String(e.ledger.Table()),
		Item: map[string]dbtypes.AttributeValue{
			ledger.AttrPK:         &dbtypes.AttributeValueMemberS{Value: k},
			ledger.AttrState:      &dbtypes.AttributeValueMemberS{Value: string(ledger.StateProcessing)},
			ledger.AttrOwner:      &dbtypes.AttributeValueMemberS{Value: "thief-p1"},
			ledger.AttrAttempt:    &dbtypes.AttributeValueMemberN{Value: "2"},
			ledger.AttrLeaseUntil: &dbtypes.AttributeValueMemberN{Value: itoa(until)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, processor.ErrLeaseLost) {
			t.Errorf("handler context cause %v, want ErrLeaseLost", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled after the lease was stolen")
	}
	eventually(t, 5*time.Second, "the lost lease to be counted", func() bool { return result(t, r, processor.ResultLeaseLost) == 1 })
	r.stop(t, 10*time.Second) // flushes any delete
	it, _ = e.item(k)
	if it.State != ledger.StateProcessing || it.Owner != "thief-p1" {
		t.Errorf("ledger after the loser finished: %s owned by %q, want the thief's claim untouched", it.State, it.Owner)
	}
	if _, deletes, _ := e.queue.counts(id); deletes != 0 {
		t.Errorf("the loser deleted the message %d times", deletes)
	}
	if got := metric(t, r.reg, "wahook_worker_leases_lost_total", nil); got != 1 {
		t.Errorf("leases lost %v, want 1", got)
	}
	if n := e.depth(e.queueURL); n != 1 {
		t.Errorf("queue holds %d messages, want the event's 1", n)
	}
}

// A retryable failure gives the event back with a backoff — the handler's
// own delay when it asks for one — and the next attempt completes it.
func TestRetryableFailureRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		minWait time.Duration
	}{
		{"exponential backoff", errors.New("downstream busy"), 900 * time.Millisecond}, // 1s × 2^0, jittered, rounded up to 1s
		{"requested delay", processor.RetryAfter(3*time.Second, errors.New("throttled")), 2900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 2*time.Second)
			body := envelopeBody(t, "retry")
			id := e.send(body)
			k := webhook.MessageKey("retry")
			var inv invocations
			var mu sync.Mutex
			var at []time.Time
			h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
				if inv.add(ev) == 1 {
					return tc.err
				}
				return nil
			})
			r := e.start(processor.Options{RetryBase: time.Second}, h)
			eventually(t, 15*time.Second, "the event to be done", func() bool {
				it, _ := e.item(k)
				return it.State == ledger.StateDone
			})
			runs := inv.of(k)
			if len(runs) != 2 || runs[0].Attempt != 1 || runs[1].Attempt != 2 {
				t.Fatalf("runs %+v, want attempts 1 and 2", runs)
			}
			for i, ev := range runs {
				if ev.ReceiveCount != i+1 || ev.MessageID != id || string(ev.Body) != string(body) ||
					!processorID.MatchString(ev.ProcessorID) || ev.Envelope.WAMID != "retry" {
					t.Errorf("run %d: receive count %d, message %q, processor %q, body %q", i+1, ev.ReceiveCount,
						ev.MessageID, ev.ProcessorID, ev.Body)
				}
			}
			mu.Lock()
			gap := at[1].Sub(at[0])
			mu.Unlock()
			if gap < tc.minWait {
				t.Errorf("second attempt %s after the first, want at least %s", gap, tc.minWait)
			}
			it, _ := e.item(k)
			if it.Attempt != 2 || !strings.Contains(it.Error, "downstream busy") && !strings.Contains(it.Error, "throttled") {
				t.Errorf("ledger item %+v, want attempt 2 with the first error kept", it)
			}
			if result(t, r, processor.ResultRetry) != 1 || result(t, r, processor.ResultDone) != 1 {
				t.Errorf("retry %v done %v, want 1 and 1", result(t, r, processor.ResultRetry), result(t, r, processor.ResultDone))
			}
			eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
		})
	}
}

// A permanent failure, and a retryable one at the last attempt, fail the
// event in the ledger, dead-letter the message with the error, and delete it.
func TestFailureDeadLetters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		wantRuns int
		wantErr  string
	}{
		{"permanent", processor.Permanent(errors.New("bad payload")), 1, "bad payload"},
		{"attempts exhausted", errors.New("still down"), 2, "attempts exhausted (2 handler failures of 2 allowed): still down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 2*time.Second)
			body := envelopeBody(t, "doomed")
			id := e.send(body)
			k := webhook.MessageKey("doomed")
			var inv invocations
			h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
				inv.add(ev)
				return tc.err
			})
			r := e.start(processor.Options{MaxAttempts: 2, RetryBase: time.Second}, h)
			dlq := e.drainDLQ(15 * time.Second)
			if len(dlq) != 1 {
				t.Fatalf("dead-letter queue got %d messages, want 1", len(dlq))
			}
			m := dlq[0]
			if aws.ToString(m.Body) != string(body) {
				t.Errorf("dead-lettered body %q, want the original", aws.ToString(m.Body))
			}
			if got := aws.ToString(m.MessageAttributes[processor.DLQAttrError].StringValue); !strings.Contains(got, tc.wantErr) {
				t.Errorf("dead-letter error attribute %q, want it to contain %q", got, tc.wantErr)
			}
			if got := aws.ToString(m.MessageAttributes[processor.DLQAttrReason].StringValue); got != processor.ResultFailed {
				t.Errorf("dead-letter reason %q, want failed", got)
			}
			if got := aws.ToString(m.MessageAttributes[processor.DLQAttrMessageID].StringValue); got != id {
				t.Errorf("dead-letter message id %q, want %q", got, id)
			}
			eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
			it, _ := e.item(k)
			if it.State != ledger.StateFailed || !strings.Contains(it.Error, tc.wantErr) {
				t.Errorf("ledger %s with error %q, want failed with %q", it.State, it.Error, tc.wantErr)
			}
			if runs := inv.of(k); len(runs) != tc.wantRuns {
				t.Errorf("handler ran %d times, want %d", len(runs), tc.wantRuns)
			}
			if result(t, r, processor.ResultFailed) != 1 {
				t.Errorf("failed results %v, want 1", result(t, r, processor.ResultFailed))
			}
		})
	}
}

// A body that is no envelope goes to the dead-letter queue once, with the
// decode error, and is deleted: no retry loop.
func TestUndecodableBodyDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	const body = `{"v":1,"key":"msg#x"` // truncated JSON
	id := e.send([]byte(body))
	var runs atomic.Int32
	r := e.start(processor.Options{}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		runs.Add(1)
		return nil
	}))
	dlq := e.drainDLQ(10 * time.Second)
	if len(dlq) != 1 || aws.ToString(dlq[0].Body) != body {
		t.Fatalf("dead-letter queue got %d messages (%v), want the body once", len(dlq), dlq)
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrReason].StringValue); got != processor.ResultPoison {
		t.Errorf("reason %q, want poison", got)
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrError].StringValue); !strings.Contains(got, "envelope: invalid") {
		t.Errorf("error attribute %q, want the decode error", got)
	}
	eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
	// The queue is empty: nothing can come back. Once more than a visibility
	// timeout later, the counts are still those of one delivery.
	r.stop(t, 10*time.Second)
	receives, deletes, _ := e.queue.counts(id)
	if receives != 1 || deletes != 1 || result(t, r, processor.ResultPoison) != 1 || runs.Load() != 0 {
		t.Errorf("received %d, deleted %d, poison %v, handler runs %d; want 1, 1, 1, 0",
			receives, deletes, result(t, r, processor.ResultPoison), runs.Load())
	}
}

// Cancelling the run context stops receiving and lets in-flight handlers
// finish within the shutdown timeout.
func TestShutdownLetsHandlersFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	e.send(envelopeBody(t, "graceful"))
	k := webhook.MessageKey("graceful")
	started := make(chan struct{})
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		close(started)
		select {
		case <-time.After(500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r := e.start(processor.Options{ShutdownTimeout: 10 * time.Second}, h)
	<-started
	took := r.stop(t, 10*time.Second)
	if took > 3*time.Second {
		t.Errorf("Run returned %s after the cancel, want about the handler's remaining 0.5s", took)
	}
	it, _ := e.item(k)
	if it.State != ledger.StateDone || it.Attempt != 1 {
		t.Errorf("ledger %s attempt %d, want done by the first attempt", it.State, it.Attempt)
	}
	if n := e.depth(e.queueURL); n != 0 {
		t.Errorf("queue holds %d messages after shutdown, want 0 (deletes flushed)", n)
	}
}

// A handler still running at the end of the shutdown timeout is cancelled,
// its event given back and its message made visible at once: another
// processor completes it within two seconds.
func TestShutdownGivesBackSlowHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	id := e.send(envelopeBody(t, "handover"))
	k := webhook.MessageKey("handover")
	started := make(chan struct{})
	causes := make(chan error, 1)
	slow := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	})
	a := e.start(processor.Options{ShutdownTimeout: 300 * time.Millisecond}, slow)
	<-started

	var inv invocations
	b := e.start(processor.Options{}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	}))
	_ = b
	took := a.stop(t, 10*time.Second)
	stopped := time.Now()
	if took > 3*time.Second {
		t.Errorf("Run returned %s after the cancel, want about the 0.3s shutdown timeout", took)
	}
	if cause := <-causes; !errors.Is(cause, processor.ErrShutdown) {
		t.Errorf("handler context cause %v, want ErrShutdown", cause)
	}
	_, _, vis := e.queue.counts(id)
	if len(vis) == 0 || vis[len(vis)-1] != 0 {
		t.Errorf("visibility changes %v, want the last to be 0", vis)
	}
	eventually(t, 2*time.Second, "another processor to complete the event", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone
	})
	t.Logf("completed by the other pool %s after the first stopped", time.Since(stopped))
	runs := inv.of(k)
	if len(runs) != 1 || runs[0].Attempt != 2 {
		t.Errorf("other pool's runs %+v, want one, attempt 2", runs)
	}
	if result(t, a, processor.ResultShutdown) != 1 {
		t.Errorf("shutdown results %v, want 1", result(t, a, processor.ResultShutdown))
	}
	it, _ := e.item(k)
	if it.Owner != "" || it.State != ledger.StateDone {
		t.Errorf("ledger %+v, want done with no owner", it)
	}
}

// While the ledger fails with connection errors the breaker opens and the
// processors stop receiving; when the probe succeeds it closes and the
// events left in the queue are completed, none dead-lettered.
func TestBreakerStopsReceivingWhileLedgerDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	const n = 3
	flaky, inv, r := e.startWithLedgerDown(t, n, 2, 400*time.Millisecond)

	eventually(t, 10*time.Second, "the breaker to open", func() bool { return r.pool.Breaker() == processor.BreakerOpen })
	eventually(t, 5*time.Second, "every processor to pause", func() bool {
		for _, s := range r.pool.Status() {
			if s.Status != processor.StatePaused {
				return false
			}
		}
		return true
	})
	if got := metric(t, r.reg, "wahook_worker_breaker_open", nil); got != 1 {
		t.Errorf("breaker_open gauge %v, want 1", got)
	}
	calls := e.queue.receiveCalls()
	probes := flaky.probes.Load()
	// For two visibility timeouts nothing is received (the messages taken
	// before the breaker opened reappear meanwhile) and nothing is deleted.
	consistently(t, 2*time.Second, "no receive while the breaker is open", func() bool {
		return e.queue.receiveCalls() == calls && r.pool.Breaker() == processor.BreakerOpen
	})
	if got := flaky.probes.Load(); got < probes+3 {
		t.Errorf("%d probes in two seconds, want several", got-probes)
	}
	if got := e.depth(e.queueURL); got != n {
		t.Errorf("queue holds %d messages while the ledger is down, want all %d", got, n)
	}

	flaky.down.Store(false)
	eventually(t, 5*time.Second, "the breaker to close", func() bool { return r.pool.Breaker() == processor.BreakerClosed })
	e.awaitDoneOnce(t, inv, n, 15*time.Second)
	if got := metric(t, r.reg, "wahook_worker_breaker_open", nil); got != 0 {
		t.Errorf("breaker_open gauge %v, want 0", got)
	}
}

// Processor ids are "<host>-<pid>-<random>-p<k>", distinct across pools.
func TestProcessorIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 2 {
		p, err := processor.New(processor.Options{QueueURL: "q", DeadLetterURL: "d", Processors: 3},
			processor.Deps{Ledger: &ledger.Store{}, Queue: newRecQueue(nil), Handler: processor.HandlerFunc(nil)})
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range p.IDs() {
			if !processorID.MatchString(id) || !strings.HasSuffix(id, "-p"+itoa(int64(i+1))) {
				t.Errorf("processor id %q", id)
			}
			if seen[id] {
				t.Errorf("processor id %q twice", id)
			}
			seen[id] = true
		}
	}
}

// After a successful probe the breaker is half-open: while the ledger still
// fails the events' writes (it answers the probe's write: flapping), one
// processor at a time receives one message, and each failed claim reopens the
// breaker; no burst of Processors×10 receives burns receive counts. Once
// writes work, the first claim closes the breaker and every event is done once.
func TestHalfOpenReceivesOneMessageAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	const n = 10
	flaky, inv, r := e.startWithLedgerDown(t, n, 3, 200*time.Millisecond)

	eventually(t, 10*time.Second, "every processor to pause", func() bool {
		for _, s := range r.pool.Status() {
			if s.Status != processor.StatePaused {
				return false
			}
		}
		return r.pool.Breaker() == processor.BreakerOpen
	})
	e.queue.openWindow()
	flaky.eventsDown.Store(true)
	flaky.down.Store(false) // the probe's write succeeds; claims still fail
	consistently(t, 2*time.Second, "the breaker not closed while claims fail", func() bool {
		return r.pool.Breaker() != processor.BreakerClosed
	})
	w := e.queue.closeWindow()
	if w.calls < 2 {
		t.Errorf("%d receives while half-open, want the trials to go on", w.calls)
	}
	if w.maxAsked > 1 || w.maxGot > 1 || w.maxRunning > 1 {
		t.Errorf("half-open receives asked for up to %d messages, got up to %d, %d at once; want 1, 1, 1",
			w.maxAsked, w.maxGot, w.maxRunning)
	}

	flaky.eventsDown.Store(false)
	eventually(t, 5*time.Second, "the breaker to close", func() bool { return r.pool.Breaker() == processor.BreakerClosed })
	e.awaitDoneOnce(t, inv, n, 20*time.Second)
}

// Writes throttled, reads fine: the breaker's probe is a conditional write, so
// it fails like the claims and the breaker stays open. Nothing is received, no
// receive count burns towards the dead-letter queue; once writes work, every
// event is done once.
func TestBreakerProbeWritesWhileWritesFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	const n = 4
	flaky, inv, r := e.startWithLedgerDown(t, n, 2, 200*time.Millisecond)
	eventually(t, 10*time.Second, "the breaker to open", func() bool { return r.pool.Breaker() == processor.BreakerOpen })
	flaky.writesDown.Store(true)
	flaky.down.Store(false) // reads answer again; writes still fail
	probes := flaky.probes.Load()
	e.queue.openWindow()
	consistently(t, 2*time.Second, "the breaker open while writes fail", func() bool {
		return r.pool.Breaker() == processor.BreakerOpen
	})
	if w := e.queue.closeWindow(); w.calls != 0 {
		t.Errorf("%d receives while writes failed, want none", w.calls)
	}
	if got := flaky.probes.Load() - probes; got < 3 {
		t.Errorf("%d probe writes in two seconds, want several", got)
	}
	flaky.writesDown.Store(false)
	e.awaitDoneOnce(t, inv, n, 20*time.Second)
}
