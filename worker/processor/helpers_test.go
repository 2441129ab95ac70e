package processor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

// env is one test's backend: its own ledger table, queue and dead-letter queue.
type env struct {
	t        *testing.T
	clients  *awsclient.Clients
	ledger   *ledger.Store
	queueURL string
	dlqURL   string
	queue    *recQueue
	// visibility is the queue's visibility timeout.
	visibility time.Duration
}

// newEnv provisions a ledger table and a queue with the given visibility
// timeout through resources.Ensure, as the worker's auto-provision does.
func newEnv(t *testing.T, visibility time.Duration) *env {
	t.Helper()
	return newEnvRedrive(t, visibility, 10)
}

// newEnvRedrive is newEnv with the queue's redrive maxReceiveCount.
func newEnvRedrive(t *testing.T, visibility time.Duration, maxReceiveCount int) *env {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name := awstest.UniqueName(t.Name())
	spec := resources.Spec{
		LedgerTable:       name + "-ledger",
		QueueName:         name + "-q",
		DLQName:           name + "-dlq",
		VisibilityTimeout: visibility,
		MaxReceiveCount:   maxReceiveCount,
	}
	prov, err := resources.Ensure(t.Context(), c.DynamoDB, c.SQS, spec, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	store, err := ledger.New(c.DynamoDB, spec.LedgerTable, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, clients: c, ledger: store, queueURL: prov.QueueURL, dlqURL: prov.DLQURL, queue: newRecQueue(c.SQS), visibility: visibility}
}

// envelopeBody is the queue body ingest would send for an inbound message.
func envelopeBody(t *testing.T, wamid string) []byte {
	t.Helper()
	ev := webhook.Event{
		Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: "15550001111",
		Timestamp: "1700000000", PhoneNumberID: "PNID", Raw: []byte(`{"id":"` + wamid + `","from":"15550001111","timestamp":"1700000000","text":{"body":"hi"}}`),
	}
	b, err := envelope.FromEvent(ev, time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send puts a body on the queue and returns the SQS message id.
func (e *env) send(body []byte) string {
	e.t.Helper()
	out, err := e.clients.SQS.SendMessage(e.t.Context(), &sqs.SendMessageInput{QueueUrl: &e.queueURL, MessageBody: aws.String(string(body))})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.MessageId)
}

// depth is the number of messages in a queue: visible, in flight and delayed.
func (e *env) depth(url string) int {
	e.t.Helper()
	out, err := e.clients.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
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

// drainDLQ receives everything in the dead-letter queue (waiting up to wait
// for the first message).
func (e *env) drainDLQ(wait time.Duration) []sqstypes.Message {
	e.t.Helper()
	var msgs []sqstypes.Message
	deadline := time.Now().Add(wait)
	for {
		out, err := e.clients.SQS.ReceiveMessage(e.t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.dlqURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
			VisibilityTimeout: 60,
		})
		if err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, out.Messages...)
		if (len(out.Messages) == 0 && len(msgs) > 0) || time.Now().After(deadline) {
			return msgs
		}
	}
}

// item reads a ledger item, failing the test on errors other than not found.
func (e *env) item(key string) (ledger.Item, bool) {
	e.t.Helper()
	it, err := e.ledger.Get(context.Background(), key)
	if errors.Is(err, ledger.ErrNotFound) {
		return ledger.Item{}, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return it, true
}

// running is a started Pool.
type running struct {
	pool   *processor.Pool
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// stop cancels the run context and waits for Run to return.
func (r *running) stop(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(within):
		t.Fatalf("Run did not return within %s of the cancel", within)
	}
	return time.Since(began)
}

// start runs a pool over e with h; opts' queue URLs are filled in, and tests'
// defaults applied (short long poll, one processor, the queue's visibility
// timeout unless set).
func (e *env) start(opts processor.Options, h processor.Handler, mod ...func(*processor.Deps)) *running {
	e.t.Helper()
	opts.QueueURL, opts.DeadLetterURL = e.queueURL, e.dlqURL
	if opts.ReceiveWait == 0 {
		opts.ReceiveWait = time.Second
	}
	if opts.Processors == 0 {
		opts.Processors = 1
	}
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = e.visibility
	}
	reg := prometheus.NewRegistry()
	m, err := processor.NewMetrics(reg)
	if err != nil {
		e.t.Fatal(err)
	}
	deps := processor.Deps{Ledger: e.ledger, Queue: e.queue, Handler: h, Metrics: m, Log: zaptest.NewLogger(e.t, zaptest.Level(zap.InfoLevel))}
	for _, f := range mod {
		f(&deps)
	}
	pool, err := processor.New(opts, deps)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{pool: pool, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- pool.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			e.t.Error("pool did not stop within 30s")
		}
	})
	return r
}

// metric sums a metric's samples whose labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	samples:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue samples
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// result is the events_total counter for one result.
func result(t *testing.T, r *running, res string) float64 {
	t.Helper()
	return metric(t, r.reg, "wahook_worker_events_total", map[string]string{"result": res})
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consistently checks cond every 50ms for d and fails the test when it does
// not hold.
func consistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s: no longer true", what)
		}
	}
}

// recQueue is the SQS client with a record of what the processors did to
// each message, by SQS message id.
type recQueue struct {
	*sqs.Client
	mu         sync.Mutex
	receipts   map[string]string // receipt handle → message id
	receives   map[string]int
	deletes    map[string]int
	visibility map[string][]int32
	receiveN   int
	window     receiveWindow
}

// receiveWindow records the receive calls made while it is open.
type receiveWindow struct {
	open       bool
	calls      int
	running    int
	maxRunning int   // calls in progress at once, at most
	maxAsked   int32 // largest MaxNumberOfMessages asked
	maxGot     int   // most messages one call returned
}

// openWindow starts recording receive calls afresh.
func (q *recQueue) openWindow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.window = receiveWindow{open: true}
}

// closeWindow stops recording and returns what was recorded.
func (q *recQueue) closeWindow() receiveWindow {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.window.open = false
	return q.window
}

func newRecQueue(c *sqs.Client) *recQueue {
	return &recQueue{Client: c, receipts: map[string]string{}, receives: map[string]int{}, deletes: map[string]int{},
		visibility: map[string][]int32{}}
}

func (q *recQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	q.receiveN++
	w := &q.window
	windowed := w.open
	if windowed {
		w.calls++
		w.running++
		w.maxRunning = max(w.maxRunning, w.running)
		w.maxAsked = max(w.maxAsked, in.MaxNumberOfMessages)
	}
	q.mu.Unlock()
	out, err := q.Client.ReceiveMessage(ctx, in, optFns...)
	q.mu.Lock()
	defer q.mu.Unlock()
	if windowed {
		w.running--
		if err == nil {
			w.maxGot = max(w.maxGot, len(out.Messages))
		}
	}
	if err != nil {
		return out, err
	}
	for _, m := range out.Messages {
		id := aws.ToString(m.MessageId)
		q.receipts[aws.ToString(m.ReceiptHandle)] = id
		q.receives[id]++
	}
	return out, nil
}

func (q *recQueue) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	out, err := q.Client.DeleteMessageBatch(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	failed := map[string]bool{}
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range in.Entries {
		if !failed[aws.ToString(e.Id)] {
			q.deletes[q.receipts[aws.ToString(e.ReceiptHandle)]]++
		}
	}
	return out, nil
}

func (q *recQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	out, err := q.Client.ChangeMessageVisibility(ctx, in, optFns...)
	if err == nil {
		q.mu.Lock()
		id := q.receipts[aws.ToString(in.ReceiptHandle)]
		q.visibility[id] = append(q.visibility[id], in.VisibilityTimeout)
		q.mu.Unlock()
	}
	return out, err
}

func (q *recQueue) counts(id string) (receives, deletes int, visibility []int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.receives[id], q.deletes[id], append([]int32(nil), q.visibility[id]...)
}

func (q *recQueue) receiveCalls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.receiveN
}

// invocations records handler runs per key.
type invocations struct {
	mu   sync.Mutex
	runs map[string][]processor.Event
}

func (inv *invocations) add(ev processor.Event) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.runs == nil {
		inv.runs = map[string][]processor.Event{}
	}
	inv.runs[ev.Key()] = append(inv.runs[ev.Key()], ev)
	return len(inv.runs[ev.Key()])
}

func (inv *invocations) of(key string) []processor.Event {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return append([]processor.Event(nil), inv.runs[key]...)
}

func key(i int) string { return fmt.Sprintf("w%03d", i) }

// flakyDB is the ledger's DynamoDB client with a switch that makes every call
// fail as if the connection were refused, one for writes only (throttled
// writes, reads fine), and one for the writes of events only (a table that
// answers the breaker's probe and fails the claims: flapping).
type flakyDB struct {
	ledger.DB
	down        atomic.Bool
	writesDown  atomic.Bool
	eventsDown  atomic.Bool
	probes      atomic.Int64 // probe writes while down
	eventWrites atomic.Int64 // event writes refused while eventsDown
}

// refuse reports whether a write to key fails now.
func (f *flakyDB) refuse(key map[string]dbtypes.AttributeValue) bool {
	probe := false
	if pk, ok := key[ledger.AttrPK].(*dbtypes.AttributeValueMemberS); ok {
		probe = pk.Value == ledger.ProbeKey
	}
	if probe && (f.down.Load() || f.writesDown.Load()) {
		f.probes.Add(1)
	}
	if !probe && f.eventsDown.Load() {
		f.eventWrites.Add(1)
		return true
	}
	return f.down.Load() || f.writesDown.Load()
}

func refused(op string) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("%s: %w", op, syscall.ECONNREFUSED)}
}

func (f *flakyDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if f.refuse(in.Item) {
		return nil, refused("PutItem")
	}
	return f.DB.PutItem(ctx, in, optFns...)
}

func (f *flakyDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.refuse(in.Key) {
		return nil, refused("UpdateItem")
	}
	return f.DB.UpdateItem(ctx, in, optFns...)
}

func (f *flakyDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if f.down.Load() {
		return nil, refused("GetItem")
	}
	return f.DB.GetItem(ctx, in, optFns...)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// startWithLedgerDown sends n events, then starts processors whose ledger
// fails every call with a connection error (flip flaky.down to recover),
// with a breaker that opens after 2 failures and probes every 100ms..probeMax.
// The handler records its invocations.
func (e *env) startWithLedgerDown(t *testing.T, n, processors int, probeMax time.Duration) (*flakyDB, *invocations, *running) {
	t.Helper()
	flaky := &flakyDB{DB: e.clients.DynamoDB}
	flaky.down.Store(true)
	store, err := ledger.New(flaky, e.ledger.Table(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e.send(envelopeBody(t, key(i)))
	}
	inv := &invocations{}
	r := e.start(processor.Options{
		Processors: processors, BreakerThreshold: 2, BackendAttempts: 1,
		BreakerProbeMin: 100 * time.Millisecond, BreakerProbeMax: probeMax,
	}, processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		inv.add(ev)
		return nil
	}), func(d *processor.Deps) { d.Ledger = store })
	return flaky, inv, r
}

// awaitDoneOnce waits up to timeout for events key(0)..key(n-1) to be done and
// the queue drained, then checks each handler ran once and nothing was
// dead-lettered.
func (e *env) awaitDoneOnce(t *testing.T, inv *invocations, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the events to be done", func() bool {
		for i := range n {
			if it, _ := e.item(webhook.MessageKey(key(i))); it.State != ledger.StateDone {
				return false
			}
		}
		return e.depth(e.queueURL) == 0
	})
	for i := range n {
		if runs := inv.of(webhook.MessageKey(key(i))); len(runs) != 1 {
			t.Errorf("%s: handler ran %d times, want 1", key(i), len(runs))
		}
	}
	if got := e.depth(e.dlqURL); got != 0 {
		t.Errorf("dead-letter queue holds %d, want 0", got)
	}
}
