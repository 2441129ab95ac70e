package processor_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// envelopeBodyAt is envelopeBody for an event ingest received at at.
func envelopeBodyAt(t *testing.T, wamid string, at time.Time) []byte {
	t.Helper()
	ev := webhook.Event{
		Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: "15550001111",
		Timestamp: "1700000000", PhoneNumberID: "PNID", Raw: []byte(`{"id":"` + wamid + `","from":"15550001111","text":{"body":"hi"}}`),
	}
	b, err := envelope.FromEvent(ev, at).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) queueARN(url string) string {
	e.t.Helper()
	out, err := e.clients.SQS.GetQueueAttributes(e.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

// undelivered counts a queue's visible and in-flight messages. (After
// StartMessageMoveTask, ElasticMQ 1.7.1 may go on reporting a moved message
// that was hidden with ChangeMessageVisibility and then deleted as
// ApproximateNumberOfMessagesDelayed; no receive returns it.)
func (e *env) undelivered(url string) int {
	e.t.Helper()
	out, err := e.clients.SQS.GetQueueAttributes(e.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// TestRedriveReopensFailedEventOnce: a failed event's dead letter, moved back
// by SQS's own DLQ redrive (StartMessageMoveTask, which the pinned ElasticMQ
// implements), runs the event again exactly once — even as two copies that
// race — as a new series of attempts; plain duplicates of the failed and of
// the done event are deleted unrun.
func TestRedriveReopensFailedEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	const wamid = "redriven"
	k := webhook.MessageKey(wamid)
	body := envelopeBody(t, wamid)
	var broken atomic.Bool
	broken.Store(true)
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		if broken.Load() {
			return processor.Permanent(errors.New("downstream rejects it"))
		}
		return nil
	})
	r := e.start(processor.Options{Processors: 2, MaxAttempts: 2}, h)
	e.send(body)
	eventually(t, 15*time.Second, "the event to fail", func() bool { it, _ := e.item(k); return it.State == ledger.StateFailed })
	eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })

	// A plain duplicate of the failed event (no dead-letter attributes) is deleted.
	e.send(body)
	eventually(t, 10*time.Second, "the plain duplicate to be deleted", func() bool {
		return e.depth(e.queueURL) == 0 && result(t, r, processor.ResultDuplicate) == 1
	})

	// Two copies of the one dead letter, then the cause is fixed and SQS's
	// redrive moves both back.
	dlq := e.drainDLQ(10 * time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dlq))
	}
	info := deadletter.Parse(dlq[0].MessageAttributes)
	if info.Reason != deadletter.ReasonFailed || info.Key != k || info.Kind != string(webhook.KindMessage) || info.Attempt != 1 || info.Fence() == "" {
		t.Fatalf("dead letter attributes %+v: want reason failed, key %s, kind message, attempt 1", info, k)
	}
	for range 2 {
		if _, err := e.clients.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &e.dlqURL, MessageBody: dlq[0].Body,
			MessageAttributes: dlq[0].MessageAttributes}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.clients.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: &e.dlqURL, ReceiptHandle: dlq[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	broken.Store(false)
	if _, err := e.clients.SQS.StartMessageMoveTask(t.Context(), &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(e.queueARN(e.dlqURL))}); err != nil {
		t.Fatalf("StartMessageMoveTask: %v", err)
	}
	eventually(t, 20*time.Second, "both copies handled", func() bool {
		return e.depth(e.dlqURL) == 0 && e.undelivered(e.queueURL) == 0 && result(t, r, processor.ResultDuplicate) == 2
	})
	it, _ := e.item(k)
	if it.State != ledger.StateDone || it.Reopens != 1 || it.Attempt != 2 || it.SeriesStart != 1 {
		t.Fatalf("ledger %s reopens %d attempt %d series_start %d; want done, 1, 2, 1", it.State, it.Reopens, it.Attempt, it.SeriesStart)
	}
	runs := inv.of(k)
	if len(runs) != 2 || runs[1].Attempt != 2 {
		t.Fatalf("handler ran %d times, want 2 (the failure, then once after the redrive at attempt 2)", len(runs))
	}
	if got := metric(t, r.reg, "wahook_worker_reopened_total", nil); got != 1 {
		t.Fatalf("reopened_total %v, want 1", got)
	}

	// A plain duplicate of the done event is deleted too.
	e.send(body)
	eventually(t, 10*time.Second, "the duplicate of the done event to be deleted", func() bool {
		return e.undelivered(e.queueURL) == 0 && result(t, r, processor.ResultDuplicate) == 3
	})
	if n := len(inv.of(k)); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

// TestReopenedSeriesCountsItsOwnAttempts: after a reopen, WAHOOK_MAX_ATTEMPTS
// applies to the new series: the event gets MaxAttempts runs again, not none.
func TestReopenedSeriesCountsItsOwnAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	const wamid = "reseries"
	k := webhook.MessageKey(wamid)
	var inv invocations
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return errors.New("still down")
	})
	e.start(processor.Options{MaxAttempts: 2, RetryBase: time.Second}, h)
	e.send(envelopeBody(t, wamid))
	dlq := e.drainDLQ(20 * time.Second)
	if len(dlq) != 1 || len(inv.of(k)) != 2 {
		t.Fatalf("first series: %d dead letters, %d runs; want 1 and 2", len(dlq), len(inv.of(k)))
	}
	if _, err := e.clients.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &e.queueURL, MessageBody: dlq[0].Body,
		MessageAttributes: dlq[0].MessageAttributes}); err != nil {
		t.Fatal(err)
	}
	again := e.drainDLQ(20 * time.Second)
	if len(again) != 1 {
		t.Fatalf("second series: %d dead letters, want 1", len(again))
	}
	runs := inv.of(k)
	if len(runs) != 4 || runs[3].Attempt != 4 {
		t.Fatalf("runs %d (last attempt %d), want 4: two per series", len(runs), runs[len(runs)-1].Attempt)
	}
	if info := deadletter.Parse(again[0].MessageAttributes); info.Attempt != 4 || info.Reason != deadletter.ReasonFailed {
		t.Fatalf("second dead letter %+v, want attempt 4, failed", info)
	}
}

// TestExpiredEnvelopeNotRunAgain: an event done long ago whose ledger item has
// expired (deleted here as DynamoDB's TTL would) is delivered again with its
// old envelope: it is not run a second time but dead-lettered as
// ledger-expired, and no ledger item is created for it.
func TestExpiredEnvelopeNotRunAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	const wamid = "ancient"
	k := webhook.MessageKey(wamid)
	// Ingest received it 29 days ago, past the default 28-day TTL.
	body := envelopeBodyAt(t, wamid, time.Now().Add(-29*24*time.Hour))
	var inv invocations
	r := e.start(processor.Options{}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	}))
	if _, err := e.ledger.Acquire(t.Context(), k); err != nil { // as ingest did back then
		t.Fatal(err)
	}
	e.send(body)
	eventually(t, 10*time.Second, "the event to be done", func() bool { it, _ := e.item(k); return it.State == ledger.StateDone })
	if _, err := e.clients.DynamoDB.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: aws.String(e.ledger.Table()),
		Key: map[string]dbtypes.AttributeValue{ledger.AttrPK: &dbtypes.AttributeValueMemberS{Value: k}}}); err != nil {
		t.Fatal(err)
	}
	e.send(body)
	eventually(t, 15*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
	if n := len(inv.of(k)); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	dlq := e.drainDLQ(5 * time.Second)
	if len(dlq) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dlq))
	}
	if info := deadletter.Parse(dlq[0].MessageAttributes); info.Reason != deadletter.ReasonExpired || info.Key != k {
		t.Fatalf("dead letter %+v, want reason ledger-expired for %s", info, k)
	}
	if _, ok := e.item(k); ok {
		t.Fatal("a ledger item was created for the expired envelope")
	}
	if got := result(t, r, processor.ResultExpired); got != 1 {
		t.Fatalf("ledger_expired results %v, want 1", got)
	}
}
