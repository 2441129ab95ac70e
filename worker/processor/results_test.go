package processor_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// throttledResults fails the first n writes that record a result (Complete,
// Fail, GiveBack: updates that remove the lease) with a connection error.
type throttledResults struct {
	ledger.DB
	left     atomic.Int64
	failures atomic.Int64
}

func (d *throttledResults) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if strings.Contains(aws.ToString(in.UpdateExpression), "REMOVE") && d.left.Add(-1) >= 0 {
		d.failures.Add(1)
		return nil, refused("UpdateItem")
	}
	return d.DB.UpdateItem(ctx, in, o...)
}

// The breaker opening while Complete is retried does not cut Complete short:
// the write gets every try its own bound allows, the event is done by the run
// that happened, and the handler is not run again.
func TestResultWriteNotCutShortByBreaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	db := &throttledResults{DB: e.clients.DynamoDB}
	db.left.Store(2)
	store, err := ledger.New(db, e.ledger.Table(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.send(envelopeBody(t, "result-1"))
	inv := &invocations{}
	r := e.start(processor.Options{
		// The first failed write opens the breaker; Complete has 4 tries.
		BreakerThreshold: 1, BackendAttempts: 4, BackendRetryBase: 20 * time.Millisecond,
		LeaseDuration: time.Minute,
	}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	}), func(d *processor.Deps) { d.Ledger = store })
	key := webhook.MessageKey("result-1")
	eventually(t, 15*time.Second, "the event to be done and deleted", func() bool {
		it, _ := e.item(key)
		return it.State == ledger.StateDone && e.depth(e.queueURL) == 0
	})
	if got := db.failures.Load(); got != 2 {
		t.Errorf("%d failed result writes, want 2 (the fault did not happen as planned)", got)
	}
	if runs := inv.of(key); len(runs) != 1 {
		t.Errorf("handler ran %d times, want 1", len(runs))
	}
	if got := result(t, r, processor.ResultDone); got != 1 {
		t.Errorf("done results %v, want 1", got)
	}
}
