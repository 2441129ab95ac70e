package processor_test

import (
	"context"
	"errors"
	"fmt"
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

// unansweredExtends lets the first claim's Extends land but loses every
// reply, as a backend too slow to answer within the call's bound would.
type unansweredExtends struct {
	processor.Ledger
	until chan time.Time // the lease's end as the first claim knows it
}

var errNoReply = errors.New("reply lost")

func (l unansweredExtends) Extend(ctx context.Context, c *ledger.Claim, lease time.Duration) error {
	if c.Attempt > 1 {
		return l.Ledger.Extend(ctx, c, lease)
	}
	select {
	case l.until <- c.LeaseUntil:
	default:
	}
	landed := *c // the caller learns nothing of the write: its claim is unchanged
	if err := l.Ledger.Extend(ctx, &landed, lease); err != nil {
		return err
	}
	return fmt.Errorf("extend %s: %w", c.Key, errNoReply)
}

// A lease whose extensions all went unanswered runs out: the processor stops
// its handler at the lease's end and counts a lapse, not a refusal (no other
// claim took the event); the event then runs once more under a new claim.
func TestUnansweredExtendsLapseTheLease(t *testing.T) {
	t.Parallel()
	const visibility = 3 * time.Second
	e := newEnv(t, visibility)
	e.send(envelopeBody(t, "unanswered"))
	var inv invocations
	cancelled := make(chan time.Time, 1)
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		if inv.add(ev) > 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			cancelled <- time.Now()
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("never stopped")
		}
	})
	l := unansweredExtends{until: make(chan time.Time, 1)}
	r := e.start(processor.Options{VisibilityTimeout: visibility, LeaseDuration: visibility}, h, func(d *processor.Deps) {
		l.Ledger = d.Ledger
		d.Ledger = l
	})
	var stopped time.Time
	select {
	case stopped = <-cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was never stopped: unanswered extensions held the lease past its end")
	}
	if until := <-l.until; stopped.Before(until) {
		t.Errorf("handler stopped at %v, before its claim's lease ran out at %v", stopped, until)
	}
	k := webhook.MessageKey("unanswered")
	eventually(t, 60*time.Second, "the event done under a new claim", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone
	})
	r.stop(t, 10*time.Second)
	if n := metric(t, r.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "lease_lapsed"}); n != 1 {
		t.Errorf("%v heartbeats reported a lapsed lease, want 1", n)
	}
	if n := metric(t, r.reg, "wahook_worker_heartbeats_total", map[string]string{"result": "lease_lost"}); n != 0 {
		t.Errorf("%v heartbeats reported the lease refused; no other claim took it before it ran out", n)
	}
	if n := metric(t, r.reg, "wahook_worker_leases_lost_total", nil); n != 1 {
		t.Errorf("%v leases lost, want 1 (the lapsed one)", n)
	}
	if it, _ := e.item(k); it.Attempt != 2 || len(inv.of(k)) != 2 {
		t.Errorf("event done at attempt %d after %d runs, want attempt 2 after 2", it.Attempt, len(inv.of(k)))
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

// sleeper is a handler that records each run and takes d (less if its
// context ends first).
func sleeper(inv *invocations, d time.Duration) processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// A message is received once, its handler run once, however slow one stage
// of its handling is, though another pool polls the queue all along. The
// beats keep it hidden from the receive (not from the claim's grant or the
// handler's start: a slow claim), through the handler (a lease write that
// is slow must not hold back the visibility change) and through the write
// that records the result (a slow Complete).
func TestMessageStaysHiddenThroughSlowStages(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name       string
		visibility time.Duration
		handler    time.Duration
		opts       processor.Options
		slow       func(l processor.Ledger, visibility time.Duration) processor.Ledger
		why        string
	}{
		{"claim 0.75x visibility", 6 * time.Second, 2 * time.Second, processor.Options{ReceiveWait: time.Second},
			func(l processor.Ledger, v time.Duration) processor.Ledger {
				return slowClaims{Ledger: l, delay: v * 3 / 4}
			},
			"it became visible before its first heartbeat"},
		{"claim 1.5x visibility", 2 * time.Second, 0, processor.Options{BackendTimeout: 6 * time.Second},
			func(l processor.Ledger, v time.Duration) processor.Ledger {
				return slowClaims{Ledger: l, delay: v * 3 / 2}
			},
			"it reappeared while its claim ran"},
		{"extend 1.2x visibility", 2 * time.Second, 5 * time.Second,
			// The lease is long enough that it never lapses meanwhile.
			processor.Options{LeaseDuration: 6 * time.Second, BackendTimeout: 6 * time.Second},
			func(l processor.Ledger, v time.Duration) processor.Ledger {
				return slowExtends{Ledger: l, delay: v * 6 / 5}
			},
			"it reappeared while a slow Extend held the heartbeat"},
		{"complete 2x visibility", 2 * time.Second, 0, processor.Options{ReceiveWait: time.Second, BackendTimeout: 6 * time.Second},
			func(l processor.Ledger, v time.Duration) processor.Ledger {
				return slowCompletes{Ledger: l, delay: 2 * v}
			},
			"it reappeared while its Complete ran"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.visibility)
			wamid := fmt.Sprintf("slow-stage-%d", i)
			id := e.send(envelopeBody(t, wamid))
			var inv invocations
			opts := tc.opts
			opts.VisibilityTimeout = tc.visibility
			slow := func(d *processor.Deps) { d.Ledger = tc.slow(d.Ledger, tc.visibility) }
			receives, visibilities, it := e.doneOnceByTwo(&inv, wamid, id, opts, sleeper(&inv, tc.handler), slow)
			if receives != 1 {
				t.Errorf("message received %d times, want 1: %s (visibility changes %v)", receives, tc.why, visibilities)
			}
			if it.Attempt != 1 {
				t.Errorf("done at attempt %d, want 1", it.Attempt)
			}
		})
	}
}
