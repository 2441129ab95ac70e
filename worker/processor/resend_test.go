package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/worker/processor"
)

// Writes fail for longer than the queue's receive budget (maxReceiveCount 3,
// visibility 1s) with the breaker kept out of the way: every claim fails for
// a backend reason. A message at its last receive is sent again as a fresh
// copy and the old one deleted, so no event reaches the dead-letter queue by
// SQS's redrive; once writes work, each is done, handled once.
func TestBackendTroubleAtLastReceiveResends(t *testing.T) {
	t.Parallel()
	e := newEnvRedrive(t, time.Second, 3)
	flaky := &flakyDB{DB: e.clients.DynamoDB}
	flaky.writesDown.Store(true)
	store, err := ledger.New(flaky, e.ledger.Table(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		e.send(envelopeBody(t, key(i)))
	}
	inv := &invocations{}
	r := e.start(processor.Options{
		Processors: 2, BreakerThreshold: 1 << 20, BackendAttempts: 1, MaxReceiveCount: 3, ReceiveWait: time.Second,
	}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	}), func(d *processor.Deps) { d.Ledger = store })

	// Enough refused writes that every message has met its last receive, with
	// no dead letter.
	eventually(t, 30*time.Second, "every message to meet its last receive (resent or dead-lettered)", func() bool {
		return metric(t, r.reg, "wahook_worker_resent_total", nil) >= n || e.depth(e.dlqURL) > 0
	})
	if got := e.depth(e.dlqURL); got != 0 {
		t.Fatalf("dead-letter queue holds %d while writes fail, want 0", got)
	}
	flaky.writesDown.Store(false)
	e.awaitDoneOnce(t, inv, n, 20*time.Second)
}
