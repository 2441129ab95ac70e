package processor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// A message received for the last time before SQS would redrive it (receive
// count = the queue's maxReceiveCount − 1) whose handler fails retryably is
// failed and dead-lettered by the worker, not given back: the ledger says
// failed and the dead-letter queue holds it exactly once.
func TestLastReceiveRetryableFailureDeadLetters(t *testing.T) {
	t.Parallel()
	const maxReceive = 3
	e := newEnvRedrive(t, time.Second, maxReceive)
	id := e.send(envelopeBody(t, "last-chance"))
	k := webhook.MessageKey("last-chance")
	// Receive it maxReceive−2 times elsewhere, as crashed workers would.
	for range maxReceive - 2 {
		eventually(t, 5*time.Second, "a receive by a crashed worker", func() bool {
			out, err := e.clients.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
				QueueUrl: &e.queueURL, WaitTimeSeconds: 1, MaxNumberOfMessages: 1,
			})
			return err == nil && len(out.Messages) == 1
		})
	}
	var inv invocations
	r := e.start(processor.Options{MaxAttempts: 5, MaxReceiveCount: maxReceive},
		processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
			inv.add(ev)
			return errors.New("downstream unavailable")
		}))
	dlq := e.drainDLQ(10 * time.Second)
	if len(dlq) != 1 || aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrMessageID].StringValue) != id {
		t.Fatalf("dead-letter queue got %d messages, want this one once", len(dlq))
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrError].StringValue); !strings.Contains(got, "max receive count") {
		t.Errorf("dead-letter error %q, want it to name the max receive count", got)
	}
	eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
	it, _ := e.item(k)
	if it.State != ledger.StateFailed || it.Attempt != 1 {
		t.Errorf("ledger %s attempt %d, want failed at attempt 1", it.State, it.Attempt)
	}
	runs := inv.of(k)
	if len(runs) != 1 || runs[0].ReceiveCount != maxReceive-1 {
		t.Errorf("handler runs %+v, want one at receive count %d", runs, maxReceive-1)
	}
	if got := result(t, r, processor.ResultFailed); got != 1 {
		t.Errorf("failed results %v, want 1", got)
	}
	// Nothing more reaches the dead-letter queue (no redrive of a second copy).
	if more := e.drainDLQ(2 * time.Second); len(more) != 0 {
		t.Errorf("dead-letter queue got %d more messages, want none", len(more))
	}
}

// With SQS unresponsive and a handler that outlives the shutdown timeout, Run
// still returns within ShutdownTimeout + ShutdownWritesTimeout (+1s slack):
// the give-back's visibility change and the delete flush share that short
// bound, tried once, instead of each taking the full retry budget. Not
// parallel: it pauses the emulator the package's other tests share.
func TestShutdownBoundedWhileSQSUnresponsive(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	e.send(envelopeBody(t, "stuck"))
	k := webhook.MessageKey("stuck")
	started := make(chan struct{})
	slow := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	const shutdown = time.Second
	r := e.start(processor.Options{ShutdownTimeout: shutdown}, slow)
	<-started
	if err := emu.Pause(awstest.SQS); err != nil {
		t.Skipf("cannot pause the SQS emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := emu.Resume(awstest.SQS); err != nil {
			t.Errorf("resume SQS: %v", err)
		}
	})
	took := r.stop(t, shutdown+processor.ShutdownWritesTimeout+time.Second)
	t.Logf("Run returned %s after the cancel", took)
	// The ledger answered: the claim was given back even though the
	// visibility change could not be made.
	it, _ := e.item(k)
	if it.State != ledger.StateQueued || it.Owner != "" {
		t.Errorf("ledger %s owner %q, want queued with no owner", it.State, it.Owner)
	}
	if got := result(t, r, processor.ResultShutdown); got != 1 {
		t.Errorf("shutdown results %v, want 1", got)
	}
}

// stallQueue is a queue whose receives never answer: they block until their
// context ends, as on a connection dropped without a reset.
type stallQueue struct {
	processor.Queue
	mu        sync.Mutex
	starts    []time.Time
	deadlines []time.Time
}

func (q *stallQueue) ReceiveMessage(ctx context.Context, _ *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	dl, _ := ctx.Deadline()
	q.mu.Lock()
	q.starts = append(q.starts, time.Now())
	q.deadlines = append(q.deadlines, dl)
	q.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (q *stallQueue) calls() (starts, deadlines []time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]time.Time(nil), q.starts...), append([]time.Time(nil), q.deadlines...)
}

// A receive that never answers is abandoned after ReceiveWait + 10s and the
// processor polls again at once: no back-off, no breaker.
func TestStalledReceiveAbandoned(t *testing.T) {
	t.Parallel()
	q := &stallQueue{}
	const wait = time.Second
	pool, err := processor.New(processor.Options{QueueURL: "q", DeadLetterURL: "d", Processors: 1, ReceiveWait: wait},
		processor.Deps{Ledger: &ledger.Store{}, Queue: q, Handler: processor.HandlerFunc(func(context.Context, processor.Event) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const bound = wait + 10*time.Second
	eventually(t, bound+3*time.Second, "a second receive", func() bool {
		starts, _ := q.calls()
		return len(starts) >= 2
	})
	starts, deadlines := q.calls()
	if deadlines[0].IsZero() || deadlines[0].Sub(starts[0]) > bound {
		t.Errorf("first receive's deadline %v after its start, want at most %s", deadlines[0].Sub(starts[0]), bound)
	}
	if gap := starts[1].Sub(starts[0]); gap < bound-100*time.Millisecond || gap > bound+time.Second {
		t.Errorf("second receive %s after the first, want right after the %s bound", gap, bound)
	}
	if pool.Breaker() != processor.BreakerClosed {
		t.Errorf("breaker %s, want closed", pool.Breaker())
	}
	if s := pool.Status()[0]; s.Status != processor.StatePolling {
		t.Errorf("processor %s, want polling", s.Status)
	}
}

// A dead-letter copy of a body near SQS's 256 KiB limit drops the original
// attributes and cuts the error to fit, so the send succeeds: the event ends
// failed and dead-lettered once, instead of looping through give-backs.
func TestNearLimitBodyDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	const wamid = "huge"
	k := webhook.MessageKey(wamid)
	attrs := map[string]sqstypes.MessageAttributeValue{
		envelope.AttrKey:  {DataType: aws.String("String"), StringValue: aws.String(k)},
		envelope.AttrKind: {DataType: aws.String("String"), StringValue: aws.String(string(webhook.KindMessage))},
	}
	ingestAttrs := 0
	for name, v := range attrs {
		ingestAttrs += len(name) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
	}
	// A body ingest can send (256 KiB with its two attributes), too large
	// for the dead-letter attributes' full ~1.1 KiB.
	body := envelopeBodyOfSize(t, wamid, 256*1024-ingestAttrs-300)
	out, err := e.clients.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{
		QueueUrl: &e.queueURL, MessageBody: aws.String(string(body)), MessageAttributes: attrs,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.MessageId)
	r := e.start(processor.Options{}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		return processor.Permanent(errors.New("rejected: " + strings.Repeat("x", 4096)))
	}))
	dlq := e.drainDLQ(15 * time.Second)
	if len(dlq) != 1 || aws.ToString(dlq[0].Body) != string(body) {
		t.Fatalf("dead-letter queue got %d messages, want the body once", len(dlq))
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrMessageID].StringValue); got != id {
		t.Errorf("dead-letter message id %q, want %q", got, id)
	}
	if got := aws.ToString(dlq[0].MessageAttributes[processor.DLQAttrError].StringValue); !strings.Contains(got, "rejected: x") || len(got) > 300 {
		t.Errorf("dead-letter error attribute of %d bytes, want the error cut to fit", len(got))
	}
	eventually(t, 5*time.Second, "the queue to drain", func() bool { return e.depth(e.queueURL) == 0 })
	if it, _ := e.item(k); it.State != ledger.StateFailed {
		t.Errorf("ledger %s, want failed", it.State)
	}
	if got := result(t, r, processor.ResultFailed); got != 1 {
		t.Errorf("failed results %v, want 1", got)
	}
	if got := result(t, r, processor.ResultBackendError); got != 0 {
		t.Errorf("backend errors %v, want 0 (no dead-letter send refused)", got)
	}
}

// envelopeBodyOfSize is envelopeBody padded to exactly size bytes.
func envelopeBodyOfSize(t *testing.T, wamid string, size int) []byte {
	t.Helper()
	encode := func(pad int) []byte {
		ev := webhook.Event{
			Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: "15550001111",
			Timestamp: "1700000000", PhoneNumberID: "PNID",
			Raw: []byte(`{"id":"` + wamid + `","from":"15550001111","timestamp":"1700000000","text":{"body":"` + strings.Repeat("a", pad) + `"}}`),
		}
		// Whole seconds in UTC: its length must not vary; recent: an envelope
		// older than the ledger's TTL would be dead-lettered unrun.
		b, err := envelope.FromEvent(ev, time.Now().UTC().Truncate(time.Second)).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := encode(size - len(encode(0)))
	if len(b) != size {
		t.Fatalf("padded envelope is %d bytes, want %d", len(b), size)
	}
	return b
}
