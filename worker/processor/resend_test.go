package processor_test

import (
	"context"
	"strconv"
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

// A message at its last receive (maxReceiveCount 1) whose claim is taken over
// while its handler runs: the Complete is refused as lease lost. Left to SQS,
// the message would be redriven to the dead-letter queue though the event is
// not failed; it is sent again as a fresh copy instead, and so is a copy that
// finds the intruder's lease live at its last receive (due when that lease
// ends), which then finishes the event.
func TestLeaseLostAtLastReceiveResends(t *testing.T) {
	t.Parallel()
	e := newEnvRedrive(t, time.Second, 1)
	wamid := key(0)
	k := webhook.MessageKey(wamid)
	e.send(envelopeBody(t, wamid))
	inv := &invocations{}
	var takenOver atomic.Bool
	r := e.start(processor.Options{MaxReceiveCount: 1}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		if takenOver.CompareAndSwap(false, true) {
			// Another processor's claim, as after a lapsed lease: a later
			// attempt under another owner, its lease running for 2 s.
			_, err := e.clients.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:        aws.String(e.ledger.Table()),
				Key:              map[string]dbtypes.AttributeValue{ledger.AttrPK: &dbtypes.AttributeValueMemberS{Value: ev.Key()}},
				UpdateExpression: aws.String("SET #owner = :o, #lease_until = :l ADD #attempt :one"),
				ExpressionAttributeNames: map[string]string{
					"#owner": ledger.AttrOwner, "#lease_until": ledger.AttrLeaseUntil, "#attempt": ledger.AttrAttempt,
				},
				ExpressionAttributeValues: map[string]dbtypes.AttributeValue{
					":o":   &dbtypes.AttributeValueMemberS{Value: "intruder#1"},
					":l":   &dbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(2*time.Second).UnixMilli(), 10)},
					":one": &dbtypes.AttributeValueMemberN{Value: "1"},
				},
			})
			return err
		}
		return nil
	}))

	eventually(t, 30*time.Second, "the event done by a second run", func() bool {
		it, ok := e.item(k)
		return ok && it.State == ledger.StateDone
	})
	// The message whose lease was lost, then (maxReceiveCount 1: every
	// receive is the last) the copies that found the intruder's lease live.
	if got := metric(t, r.reg, "wahook_worker_resent_total", nil); got < 1 {
		t.Errorf("resent %v messages, want at least the one whose lease was lost at its last receive", got)
	}
	if got := e.depth(e.dlqURL); got != 0 {
		t.Errorf("dead-letter queue holds %d, want 0: the event was never failed", got)
	}
	if got := len(inv.of(k)); got != 2 {
		t.Errorf("handler ran %d times, want 2 (the run that lost its lease, the fresh copy's)", got)
	}
}
