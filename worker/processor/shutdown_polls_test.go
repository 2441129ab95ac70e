package processor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// orderQueue records, around a queue, the receives in flight and how each
// ended, and how many were in flight at each visibility change to 0.
type orderQueue struct {
	processor.Queue
	mu       sync.Mutex
	inFlight int
	ended    []error // receive results, in the order they ended
	endedAt  []time.Time
	zeroes   []int // receives in flight at each ChangeMessageVisibility(0)
}

func (q *orderQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	q.inFlight++
	q.mu.Unlock()
	out, err := q.Queue.ReceiveMessage(ctx, in, optFns...)
	q.mu.Lock()
	q.inFlight--
	q.ended = append(q.ended, err)
	q.endedAt = append(q.endedAt, time.Now())
	q.mu.Unlock()
	return out, err
}

func (q *orderQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if in.VisibilityTimeout == 0 {
		q.mu.Lock()
		q.zeroes = append(q.zeroes, q.inFlight)
		q.mu.Unlock()
	}
	return q.Queue.ChangeMessageVisibility(ctx, in, optFns...)
}

func (q *orderQueue) polling() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inFlight
}

// At shutdown the long polls in flight are not abandoned — SQS and LocalStack
// keep an abandoned poll open and hide whatever it takes for the visibility
// timeout — and the events the shutdown gives back are made visible only once
// none of the pool's polls is open to take them.
func TestShutdownLetsPollsEndBeforeGivingBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10*time.Second)
	e.send(envelopeBody(t, "polls-first"))
	k := webhook.MessageKey("polls-first")
	started := make(chan struct{})
	slow := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	q := &orderQueue{Queue: e.queue}
	const shutdown = 2 * time.Second
	a := e.start(processor.Options{Processors: 2, ShutdownTimeout: shutdown, ReceiveWait: 2 * time.Second}, slow,
		func(d *processor.Deps) { d.Queue = q })
	<-started
	// The other processor polls the empty queue.
	eventually(t, 5*time.Second, "a receive in flight", func() bool { return q.polling() > 0 })

	stopped := time.Now()
	took := a.stop(t, shutdown+processor.ShutdownWritesTimeout+time.Second)
	t.Logf("Run returned %s after the cancel", took)

	q.mu.Lock()
	defer q.mu.Unlock()
	for i, err := range q.ended {
		if q.endedAt[i].After(stopped) && err != nil {
			t.Errorf("a receive in flight at the cancel ended with %v, want it to run to its end", err)
		}
	}
	if len(q.zeroes) != 1 {
		t.Fatalf("%d visibility changes to 0, want 1 (the give-back)", len(q.zeroes))
	}
	if q.zeroes[0] != 0 {
		t.Errorf("the give-back made the message visible with %d of the pool's receives in flight, want 0", q.zeroes[0])
	}
	it, _ := e.item(k)
	if it.State != ledger.StateQueued || it.Owner != "" {
		t.Errorf("ledger %s owner %q, want queued with no owner", it.State, it.Owner)
	}
}
