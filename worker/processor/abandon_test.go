package processor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// A handler that ignores its context (a plug-in that sleeps far past its
// deadline): heartbeats stop once it is abandoned, its lease lapses and
// another processor takes the event over and completes it; the abandoned run
// is counted; stopping the pool is still bounded though the run goes on.
func TestHandlerIgnoringContextIsAbandoned(t *testing.T) {
	t.Parallel()
	const visibility = 2 * time.Second
	e := newEnv(t, visibility)
	e.send(envelopeBody(t, "stubborn"))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // let the ignored run end with the test
	var inv invocations
	var once sync.Once
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		first := false
		once.Do(func() { first = true })
		if first {
			<-release // ignores ctx
		}
		return nil
	})
	opts := processor.Options{VisibilityTimeout: visibility, HandlerTimeout: 500 * time.Millisecond, ShutdownTimeout: time.Second}
	a := e.start(opts, h)
	b := e.start(opts, h)

	k := webhook.MessageKey("stubborn")
	eventually(t, 20*time.Second, "the event to be done by another run", func() bool {
		it, _ := e.item(k)
		return it.State == ledger.StateDone
	})
	runs := inv.of(k)
	if len(runs) != 2 || runs[0].Attempt != 1 || runs[1].Attempt != 2 {
		t.Fatalf("runs %+v, want attempt 1 (abandoned) then attempt 2", runs)
	}
	abandoned := metric(t, a.reg, "wahook_worker_handler_abandoned_total", nil) + metric(t, b.reg, "wahook_worker_handler_abandoned_total", nil)
	if abandoned != 1 {
		t.Errorf("abandoned runs %v, want 1", abandoned)
	}
	// Both pools stop within the shutdown timeout plus the shutdown writes'
	// bound, the ignored run still going.
	for _, r := range []*running{a, b} {
		if took := r.stop(t, time.Second+processor.ShutdownWritesTimeout+time.Second); took > time.Second+processor.ShutdownWritesTimeout {
			t.Errorf("stop took %s", took)
		}
	}
}
