package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/handlers/store"
	"github.com/wahook/wahook/worker/processor"
)

// floorBody stands in for an envelope: the size of wahook's (about 600 bytes
// for a text message with its contact and metadata).
var floorBody = `{"v":1,"key":"msg#floor","kind":"message","payload":"` + strings.Repeat("x", 540) + `"}`

// floorRig is a ledger-shaped table, a messages table and a queue of the
// floor clients' own, reached through the same call counters as wahook's
// processes.
type floorRig struct {
	db       *dynamodb.Client
	q        *sqs.Client
	ledger   string
	messages string
	queueURL string
	seq      atomic.Int64
	// store is wahook's own ledger code on a ledger table of the rig's, and
	// handler the store handler on a messages table of its own: the floor
	// flavour that sends wahook's requests, not minimal ones.
	store   *ledger.Store
	handler *store.Handler
}

func newFloorRig(r *runner, clients *awsclient.Clients) *floorRig {
	ctx := r.Context()
	f := &floorRig{db: clients.DynamoDB, q: clients.SQS,
		ledger: awstest.UniqueName("bench-floor"), messages: awstest.UniqueName("bench-floor-msgs")}
	for _, table := range []string{f.ledger, f.messages} {
		if _, err := f.db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			BillingMode:          dbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS}},
			KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash}},
		}); err != nil {
			r.Fatalf("floor table: %v", err)
		}
		r.Cleanup(func() {
			_, _ = f.db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		})
	}
	table := awstest.UniqueName("bench-floor-ledger")
	if err := resources.EnsureTable(ctx, f.db, resources.LedgerTableInput(table), zap.NewNop()); err != nil {
		r.Fatalf("floor ledger table: %v", err)
	}
	r.Cleanup(func() {
		_, _ = f.db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	var err error
	if f.store, err = ledger.New(f.db, table, ledger.Options{}); err != nil {
		r.Fatalf("floor ledger: %v", err)
	}
	msgs := awstest.UniqueName("bench-floor-messages")
	if err := resources.EnsureTable(ctx, f.db, resources.MessagesTableInput(msgs), zap.NewNop()); err != nil {
		r.Fatalf("floor messages table: %v", err)
	}
	r.Cleanup(func() {
		_, _ = f.db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(msgs)})
	})
	if f.handler, err = store.New(f.db, msgs); err != nil {
		r.Fatalf("floor store handler: %v", err)
	}
	out, err := f.q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.UniqueName("bench-floor"))})
	if err != nil {
		r.Fatalf("floor queue: %v", err)
	}
	f.queueURL = aws.ToString(out.QueueUrl)
	r.Cleanup(func() { _, _ = f.q.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	return f
}

func (f *floorRig) key() string { return "msg#floor-" + strconv.FormatInt(f.seq.Add(1), 10) }

func s(v string) dbtypes.AttributeValue { return &dbtypes.AttributeValueMemberS{Value: v} }

// acquire is wahook's Acquire: a conditional put.
func (f *floorRig) acquire(ctx context.Context, key string) error {
	_, err := f.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(f.ledger),
		Item:                map[string]dbtypes.AttributeValue{"pk": s(key), "state": s("received"), "token": s("t")},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	return err
}

// move is a conditional state change, as MarkQueued, Claim and Complete are:
// from any of the states in from (comma-separated) to to.
func (f *floorRig) move(ctx context.Context, key, from, to string) error {
	vals := map[string]dbtypes.AttributeValue{":to": s(to)}
	var names []string
	for i, st := range strings.Split(from, ",") {
		n := ":f" + strconv.Itoa(i)
		vals[n] = s(st)
		names = append(names, n)
	}
	_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(f.ledger),
		Key:                       map[string]dbtypes.AttributeValue{"pk": s(key)},
		UpdateExpression:          aws.String("SET #s = :to"),
		ConditionExpression:       aws.String("#s IN (" + strings.Join(names, ", ") + ")"),
		ExpressionAttributeNames:  map[string]string{"#s": "state"},
		ExpressionAttributeValues: vals,
	})
	return err
}

// floorEvent is one event of a floor run: its key and its queue message body.
type floorEvent struct{ key, body string }

// sendBatch sends events with ingest's message attributes (key and kind).
func (f *floorRig) sendBatch(ctx context.Context, events []floorEvent) error {
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(events))
	for i, e := range events {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(e.body),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				envelope.AttrKey:  {DataType: aws.String("String"), StringValue: aws.String(e.key)},
				envelope.AttrKind: {DataType: aws.String("String"), StringValue: aws.String(string(webhook.KindMessage))},
			},
		}
	}
	out, err := f.q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(f.queueURL), Entries: entries})
	if err == nil && len(out.Failed) > 0 {
		err = fmt.Errorf("%d entries refused", len(out.Failed))
	}
	return err
}

// floorOps are the same-calls floor's events and requests: each event's
// Acquire and MarkQueued (ingest), Claim, the handler's write and Complete
// (processor).
type floorOps interface {
	// event is the run's i-th event (i < the run's n).
	event(i int) floorEvent
	acquire(ctx context.Context, key string) (ledger.Receipt, error)
	markQueued(ctx context.Context, r ledger.Receipt) error
	claim(ctx context.Context, key string) (ledger.Claim, error)
	// handle is the handler's write for the event received as body.
	handle(ctx context.Context, key, body string) error
	complete(ctx context.Context, c ledger.Claim) error
}

// minimalOps make each call the smallest request of its kind: a put and
// state changes with one-attribute conditions, a stand-in body of an
// envelope's size, and a plain put of 200 bytes for the handler.
type minimalOps struct{ f *floorRig }

func (o minimalOps) event(int) floorEvent { return floorEvent{key: o.f.key(), body: floorBody} }

func (o minimalOps) handle(ctx context.Context, key, _ string) error {
	_, err := o.f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(o.f.messages),
		Item: map[string]dbtypes.AttributeValue{"pk": s(key), "body": s(floorBody[:200])}})
	return err
}

func (o minimalOps) acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	return ledger.Receipt{Key: key}, o.f.acquire(ctx, key)
}

func (o minimalOps) markQueued(ctx context.Context, r ledger.Receipt) error {
	// A processor may have claimed it already, as in wahook.
	if err := o.f.move(ctx, r.Key, "received", "queued"); err != nil && !awserr.ConditionFailed(err) {
		return err
	}
	return nil
}

func (o minimalOps) claim(ctx context.Context, key string) (ledger.Claim, error) {
	// The queue may deliver before MarkQueued: claim from either.
	return ledger.Claim{Key: key}, o.f.move(ctx, key, "received,queued", "processing")
}

func (o minimalOps) complete(ctx context.Context, c ledger.Claim) error {
	return o.f.move(ctx, c.Key, "processing", "done")
}

// wahookOps are wahook's own requests: the ledger's calls (shared/ledger:
// fenced conditions, tokens, lease, attempt, TTL), the envelopes ingest
// sends for the bench's own webhooks' messages, and the store handler's
// write — what ingest and the workers send.
type wahookOps struct {
	ledger  *ledger.Store
	handler *store.Handler
	events  []floorEvent
}

// newWahookOps returns wahookOps for a run of n events: fresh messages from gen,
// as the bench's webhooks carry them, in the envelopes ingest would send.
func (f *floorRig) newWahookOps(gen *harness.Gen, n int) (wahookOps, error) {
	batch, err := webhook.Parse(gen.Payload(gen.Messages(n), nil).JSON())
	if err != nil {
		return wahookOps{}, fmt.Errorf("floor events: %w", err)
	}
	o := wahookOps{ledger: f.store, handler: f.handler, events: make([]floorEvent, len(batch.Events))}
	now := time.Now()
	for i, e := range batch.Events {
		body, err := envelope.FromEvent(e, now).Encode()
		if err != nil {
			return wahookOps{}, err
		}
		o.events[i] = floorEvent{key: e.Key, body: string(body)}
	}
	return o, nil
}

func (o wahookOps) event(i int) floorEvent { return o.events[i] }

func (o wahookOps) handle(ctx context.Context, key, body string) error {
	env, err := envelope.Decode([]byte(body))
	if err != nil {
		return fmt.Errorf("floor event %s: %w", key, err)
	}
	return o.handler.Handle(ctx, processor.Event{Envelope: env, Body: []byte(body)})
}

func (o wahookOps) acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	return o.ledger.Acquire(ctx, key)
}

func (o wahookOps) markQueued(ctx context.Context, r ledger.Receipt) error {
	_, err := o.ledger.MarkQueued(ctx, r) // false: claimed already, as in wahook
	return err
}

func (o wahookOps) claim(ctx context.Context, key string) (ledger.Claim, error) {
	return o.ledger.Claim(ctx, key, "bench-floor", "", 30*time.Second, time.Now())
}

func (o wahookOps) complete(ctx context.Context, c ledger.Claim) error {
	return o.ledger.Complete(ctx, c)
}

// sameCalls runs n events through exactly wahook's backend calls per event —
// ingest: Acquire, SendMessageBatch (per 10), MarkQueued; processor: receive
// (10 a call), Claim, the handler's write, Complete, DeleteMessageBatch
// (per receive) — with conc producers and conc consumers, nothing else. It
// returns events per second, end to end.
func (f *floorRig) sameCalls(ctx context.Context, n, conc int, ops floorOps) (float64, error) {
	var (
		next     atomic.Int64
		consumed atomic.Int64
		errMu    sync.Mutex
		errs     []error
		wg       sync.WaitGroup
	)
	// A failed call ends the run with its error: an event whose send failed
	// would otherwise keep the consumers polling for it forever (seen under
	// load at concurrency 32: the run hung). So does a call that never returns.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		cancel()
	}
	began := time.Now()
	for range conc {
		wg.Go(func() { // a producer: one webhook of ten at a time
			for {
				first := next.Add(10) - 10
				if first >= int64(n) {
					return
				}
				events := make([]floorEvent, min(10, int64(n)-first))
				receipts := make([]ledger.Receipt, len(events))
				for i := range events {
					events[i] = ops.event(int(first) + i)
					r, err := ops.acquire(ctx, events[i].key)
					if err != nil {
						fail(err)
					}
					receipts[i] = r
				}
				if err := f.sendBatch(ctx, events); err != nil {
					fail(err)
				}
				for _, r := range receipts {
					if err := ops.markQueued(ctx, r); err != nil {
						fail(err)
					}
				}
			}
		})
	}
	var cw sync.WaitGroup
	for range conc {
		cw.Go(func() { // a processor
			failed := 0 // receives in a row
			for consumed.Load() < int64(n) && ctx.Err() == nil {
				out, err := f.q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(f.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
					MessageAttributeNames: []string{envelope.AttrKey, envelope.AttrKind},
				})
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// A failed receive changes nothing in the queue: the
					// processors poll again, and so does the floor, a few
					// times (an emulator's reply was once cut short).
					if failed++; failed < 3 {
						log.Printf("same-calls floor: receive failed, polling again: %v", err)
						continue
					}
					fail(err)
					return
				}
				failed = 0
				var del []sqstypes.DeleteMessageBatchRequestEntry
				for i, m := range out.Messages {
					k := aws.ToString(m.MessageAttributes[envelope.AttrKey].StringValue)
					c, err := ops.claim(ctx, k)
					if err != nil {
						fail(fmt.Errorf("claim %s: %w", k, err))
					}
					if err := ops.handle(ctx, k, aws.ToString(m.Body)); err != nil {
						fail(fmt.Errorf("handle %s: %w", k, err))
					}
					if err := ops.complete(ctx, c); err != nil {
						fail(err)
					}
					del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
				}
				if len(del) > 0 {
					if _, err := f.q.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(f.queueURL), Entries: del}); err != nil {
						fail(err)
					}
					consumed.Add(int64(len(del)))
				}
			}
		})
	}
	wg.Wait()
	cw.Wait()
	took := time.Since(began)
	if err := ctx.Err(); err != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%d of %d events consumed: %w", consumed.Load(), n, err))
	}
	return float64(n) / took.Seconds(), errors.Join(errs...)
}

// bigBody times what a pipeline must do at least for one 1,000-update body:
// 2,000 conditional writes (Acquire, MarkQueued) and 100 batch sends, with
// conc calls in flight.
func (f *floorRig) bigBody(ctx context.Context, conc int) (time.Duration, error) {
	events := make([]floorEvent, 1000)
	for i := range events {
		events[i] = floorEvent{key: f.key(), body: floorBody}
	}
	began := time.Now()
	var next atomic.Int64
	var errMu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				first := int(next.Add(10) - 10)
				if first >= len(events) {
					return
				}
				batch := events[first : first+10]
				var err error
				for _, e := range batch {
					err = errors.Join(err, f.acquire(ctx, e.key))
				}
				err = errors.Join(err, f.sendBatch(ctx, batch))
				for _, e := range batch {
					err = errors.Join(err, f.move(ctx, e.key, "received", "queued"))
				}
				if err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return time.Since(began), errors.Join(errs...)
}

// raw measures one operation alone: n calls with conc in flight.
func raw(ctx context.Context, n, conc int, op func(context.Context) error) (float64, harness.Summary, error) {
	var (
		next int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, n)
		errs []error
		wg   sync.WaitGroup
	)
	began := time.Now()
	for range conc {
		wg.Go(func() {
			for atomic.AddInt64(&next, 1) <= int64(n) {
				t0 := time.Now()
				err := op(ctx)
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	return float64(n) / took.Seconds(), harness.Summarize(lat), errors.Join(errs...)
}
