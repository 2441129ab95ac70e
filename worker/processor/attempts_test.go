package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// A lapsed lease is an interruption, not a handler failure: with
// WAHOOK_MAX_ATTEMPTS 1 the event still runs again under a new claim and ends
// done, not failed ("attempt 2 of 1").
func TestLapsedLeasesDoNotSpendAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	e.send(envelopeBody(t, "lapsed"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		if inv.add(ev) < 3 {
			// Outlive the lease, as a run whose heartbeats did not land.
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return nil
	})
	opts := processor.Options{VisibilityTimeout: time.Second, LeaseDuration: time.Second, DisableHeartbeat: true, MaxAttempts: 1}
	e.start(opts, h)
	e.start(opts, h)
	k := webhook.MessageKey("lapsed")
	eventually(t, 30*time.Second, "the event to be finished", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone || it.State == ledger.StateFailed
	})
	it, _ := e.item(k)
	if it.State != ledger.StateDone {
		t.Fatalf("event %s (%q) after %d runs, want done: lapsed leases spent the attempts", it.State, it.Error, len(inv.of(k)))
	}
	if it.Attempt < 3 || it.Failures != 0 || it.GivenBack != 0 {
		t.Errorf("ledger attempt %d, failures %d, given back %d; want attempt ≥ 3 (two interrupted claims), no failures",
			it.Attempt, it.Failures, it.GivenBack)
	}
	if got := e.depth(e.dlqURL); got != 0 {
		t.Errorf("dead-letter queue holds %d, want 0", got)
	}
}

// An event whose claims never end with a result (a crash loop) still ends:
// past WAHOOK_MAX_INTERRUPTIONS it fails, dead-lettered with a reason that
// says so.
func TestCrashLoopEndsInDeadLetterQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	e.send(envelopeBody(t, "crashloop"))
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		select { // never a result in time: every lease lapses
		case <-time.After(2500 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	opts := processor.Options{VisibilityTimeout: time.Second, LeaseDuration: time.Second, DisableHeartbeat: true,
		MaxAttempts: 5, MaxInterruptions: 2}
	e.start(opts, h)
	e.start(opts, h)
	dlq := e.drainDLQ(30 * time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-letter queue got %d messages, want 1", len(dlq))
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrError].StringValue); !strings.Contains(got, "interrupted 3 times") {
		t.Errorf("dead-letter error %q, want it to say the event was interrupted 3 times", got)
	}
	k := webhook.MessageKey("crashloop")
	it, _ := e.item(k)
	if it.State != ledger.StateFailed || it.Attempt != 4 {
		t.Errorf("ledger %s at attempt %d, want failed at attempt 4 (three interrupted claims, then the one that failed it)", it.State, it.Attempt)
	}
	if runs := len(inv.of(k)); runs != 3 {
		t.Errorf("handler ran %d times, want 3", runs)
	}
}
