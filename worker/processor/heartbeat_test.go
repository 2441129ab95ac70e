package processor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// slowClaims delays every claim, as a slow or throttled DynamoDB would.
type slowClaims struct {
	processor.Ledger
	delay time.Duration
}

func (l slowClaims) Claim(ctx context.Context, key, owner, token string, lease time.Duration, born time.Time) (ledger.Claim, error) {
	select {
	case <-time.After(l.delay):
	case <-ctx.Done():
		return ledger.Claim{}, ctx.Err()
	}
	return l.Ledger.Claim(ctx, key, owner, token, lease, born)
}

// Heartbeats count from the receive, not from the handler's start: a claim
// that takes three quarters of the visibility timeout does not let the
// message become visible (and be received by another processor) before the
// first heartbeat.
func TestHeartbeatCountsFromReceive(t *testing.T) {
	t.Parallel()
	const visibility = 6 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "slow-claim"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		select {
		case <-time.After(2 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	slow := func(d *processor.Deps) { d.Ledger = slowClaims{Ledger: d.Ledger, delay: visibility * 3 / 4} }
	opts := processor.Options{VisibilityTimeout: visibility, ReceiveWait: time.Second}
	receives, visibilities, _ := e.doneOnceByTwo(&inv, "slow-claim", id, opts, h, slow)
	if receives != 1 {
		t.Errorf("message received %d times, want 1: it became visible before its first heartbeat (visibility changes %v)", receives, visibilities)
	}
}

// The message stays hidden through a claim slower than the whole visibility
// timeout (a throttled ledger's retries): the beats start at the receive, not
// once the claim is granted.
func TestClaimSlowerThanVisibility(t *testing.T) {
	t.Parallel()
	const visibility = 2 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "slower-claim"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	})
	slow := func(d *processor.Deps) { d.Ledger = slowClaims{Ledger: d.Ledger, delay: visibility * 3 / 2} }
	opts := processor.Options{VisibilityTimeout: visibility, BackendTimeout: 3 * visibility}
	receives, visibilities, it := e.doneOnceByTwo(&inv, "slower-claim", id, opts, h, slow)
	if receives != 1 {
		t.Errorf("message received %d times, want 1: it reappeared while its claim ran (visibility changes %v)", receives, visibilities)
	}
	if it.Attempt != 1 {
		t.Errorf("done at attempt %d, want 1", it.Attempt)
	}
}

// doneOnceByTwo runs two pools over e with h and mod until the event of wamid
// (message id) is done and its message deleted; it fails the test unless h
// ran once, and returns how often the message was received, its visibility
// changes and the event's ledger item.
func (e *env) doneOnceByTwo(inv *invocations, wamid, id string, opts processor.Options, h processor.Handler,
	mod func(*processor.Deps)) (receives int, visibilities []int32, it ledger.Item) {
	e.t.Helper()
	e.start(opts, h, mod)
	e.start(opts, h, mod)
	k := webhook.MessageKey(wamid)
	eventually(e.t, 30*time.Second, "the event to be done and its message deleted", func() bool {
		it, _ := e.item(k)
		_, deletes, _ := e.queue.counts(id)
		return it.State == ledger.StateDone && deletes > 0
	})
	receives, _, visibilities = e.queue.counts(id)
	if runs := inv.of(k); len(runs) != 1 {
		e.t.Errorf("handler ran %d times, want 1", len(runs))
	}
	it, _ = e.item(k)
	return receives, visibilities, it
}

// slowCompletes delays every Complete past the visibility timeout.
type slowCompletes struct {
	processor.Ledger
	delay time.Duration
}

func (l slowCompletes) Complete(ctx context.Context, c ledger.Claim) error {
	select {
	case <-time.After(l.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.Ledger.Complete(ctx, c)
}

// Heartbeats go on through the write that records the handler's result: a
// Complete slower than the whole visibility timeout neither lets the message
// reappear (received by the other processor) nor lets the lease lapse (the
// handler run again under a new claim).
func TestHeartbeatsCoverTheResultWrite(t *testing.T) {
	t.Parallel()
	const visibility = 2 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "slow-complete"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	})
	slow := func(d *processor.Deps) { d.Ledger = slowCompletes{Ledger: d.Ledger, delay: 2 * visibility} }
	opts := processor.Options{VisibilityTimeout: visibility, ReceiveWait: time.Second, BackendTimeout: 3 * visibility}
	receives, visibilities, it := e.doneOnceByTwo(&inv, "slow-complete", id, opts, h, slow)
	if receives != 1 {
		t.Errorf("message received %d times, want 1: it reappeared while its Complete ran (visibility changes %v)", receives, visibilities)
	}
	if it.Attempt != 1 {
		t.Errorf("done at attempt %d, want 1", it.Attempt)
	}
}

// lateExtends holds the first Extend until the claim's Complete has landed, as
// a heartbeat whose reply was lost and whose retry comes after the result
// write on a slow backend: the retry is refused, the event being done.
type lateExtends struct {
	processor.Ledger
	extending chan struct{} // closed when the first Extend begins
	completed chan struct{} // closed when a Complete has landed
	answered  chan error    // the held Extend's answer
	first     *sync.Once
}

func (l lateExtends) Extend(ctx context.Context, c *ledger.Claim, lease time.Duration) error {
	held := false
	l.first.Do(func() { held = true; close(l.extending) })
	if !held {
		return l.Ledger.Extend(ctx, c, lease)
	}
	select {
	case <-l.completed:
	case <-ctx.Done():
		l.answered <- ctx.Err()
		return ctx.Err()
	}
	err := l.Ledger.Extend(ctx, c, lease)
	l.answered <- err
	return err
}

func (l lateExtends) Complete(ctx context.Context, c ledger.Claim) error {
	err := l.Ledger.Complete(ctx, c)
	if err == nil {
		close(l.completed)
	}
	return err
}

// heldDeletes holds every delete until release is closed: the beats, handed
// to the delete, go on until then.
type heldDeletes struct {
	processor.Queue
	release chan struct{}
}

func (q heldDeletes) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	select {
	case <-q.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return q.Queue.DeleteMessageBatch(ctx, in, optFns...)
}

// An Extend refused because the processor's own Complete landed first is not
// a lost lease: the handler had returned, the result write decides.
func TestExtendRefusedByOwnResultIsNotLeaseLost(t *testing.T) {
	t.Parallel()
	const visibility = 3 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "late-extend"))
	l := lateExtends{extending: make(chan struct{}), completed: make(chan struct{}), answered: make(chan error, 1), first: &sync.Once{}}
	release := make(chan struct{})
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		select {
		case <-l.extending: // return while the first heartbeat's Extend is held
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r := e.start(processor.Options{VisibilityTimeout: visibility, BackendTimeout: 2 * visibility}, h, func(d *processor.Deps) {
		l.Ledger = d.Ledger
		d.Ledger = l
		d.Queue = heldDeletes{Queue: d.Queue, release: release}
	})
	select {
	case err := <-l.answered:
		if !errors.Is(err, ledger.ErrLeaseLost) {
			t.Fatalf("the held Extend answered %v, want it refused (%v) by the landed Complete", err, ledger.ErrLeaseLost)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held Extend was never answered")
	}
	// The heartbeat has the refusal: it either beats on (its next visibility
	// change comes after it judged the refusal) or reports the lease lost.
	_, _, before := e.queue.counts(id)
	eventually(t, 10*time.Second, "the heartbeat past the refusal", func() bool {
		_, _, vis := e.queue.counts(id)
		return len(vis) > len(before) || metric(t, r.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "lease_lost"}) > 0
	})
	close(release)
	k := webhook.MessageKey("late-extend")
	eventually(t, 30*time.Second, "the event done and its message deleted", func() bool {
		it, _ := e.item(k)
		_, deletes, _ := e.queue.counts(id)
		return it.State == ledger.StateDone && deletes > 0
	})
	r.stop(t, 10*time.Second)
	if n := metric(t, r.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "lease_lost"}); n != 0 {
		t.Errorf("%v heartbeats reported the lease lost; the refusal was the processor's own Complete", n)
	}
	if n := metric(t, r.reg, "wahook_worker_leases_lost_total", nil); n != 0 {
		t.Errorf("%v leases lost, want 0", n)
	}
	if runs := inv.of(k); len(runs) != 1 {
		t.Errorf("handler ran %d times, want 1", len(runs))
	}
}

// slowExtends delays every Extend, as a slow or throttled DynamoDB would.
type slowExtends struct {
	processor.Ledger
	delay time.Duration
}

func (l slowExtends) Extend(ctx context.Context, c *ledger.Claim, lease time.Duration) error {
	select {
	case <-time.After(l.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.Ledger.Extend(ctx, c, lease)
}

// A lease write slower than what is left of the visibility timeout does not
// hold back the visibility heartbeat: the message stays hidden while the
// handler runs across several slow Extends.
func TestSlowExtendDoesNotHoldBackVisibility(t *testing.T) {
	t.Parallel()
	const visibility = 2 * time.Second
	e := newEnv(t, visibility)
	id := e.send(envelopeBody(t, "slow-extend"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		select {
		case <-time.After(5 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// Each Extend takes 1.2 visibility timeouts; the lease is long enough
	// that it never lapses meanwhile.
	slow := func(d *processor.Deps) { d.Ledger = slowExtends{Ledger: d.Ledger, delay: visibility * 6 / 5} }
	opts := processor.Options{VisibilityTimeout: visibility, LeaseDuration: 3 * visibility, BackendTimeout: 3 * visibility}
	receives, visibilities, it := e.doneOnceByTwo(&inv, "slow-extend", id, opts, h, slow)
	if receives != 1 {
		t.Errorf("message received %d times, want 1: it reappeared while a slow Extend held the heartbeat (visibility changes %v)", receives, visibilities)
	}
	if it.Attempt != 1 {
		t.Errorf("done at attempt %d, want 1", it.Attempt)
	}
}
