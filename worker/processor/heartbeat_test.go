package processor_test

import (
	"context"
	"testing"
	"time"

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
