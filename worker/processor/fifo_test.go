package processor_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/processor"
)

// newFIFOEnv is newEnv with a FIFO queue and a FIFO dead-letter queue.
func newFIFOEnv(t *testing.T, visibility time.Duration) *env {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name := awstest.UniqueName(t.Name())
	spec := resources.Spec{
		LedgerTable: name + "-ledger", QueueName: name + "-q.fifo", DLQName: name + "-dlq.fifo",
		VisibilityTimeout: visibility, MaxReceiveCount: 10,
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

// sendFIFO puts an inbound message of customer's conversation on the FIFO
// queue, with the group and deduplication ids ingest gives it.
func (e *env) sendFIFO(customer, wamid string) {
	e.t.Helper()
	env := envelope.FromEvent(webhook.Event{
		Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: customer,
		Timestamp: "1700000000", PhoneNumberID: "PNID", Raw: []byte(`{"id":"` + wamid + `"}`),
	}, time.Now())
	body, err := env.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.clients.SQS.SendMessage(e.t.Context(), &sqs.SendMessageInput{
		QueueUrl: &e.queueURL, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(env.GroupID()), MessageDeduplicationId: aws.String(env.DeduplicationID()),
	}); err != nil {
		e.t.Fatal(err)
	}
}

// conversations records, per conversation, the order of successful handler
// runs and how many of its handlers ever ran at once.
type conversations struct {
	mu          sync.Mutex
	done        map[string][]string
	running     map[string]int
	maxRunning  map[string]int
	maxAnyGroup int
	runningAll  int
}

func (c *conversations) begin(ev processor.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := ev.Envelope.GroupID()
	c.running[g]++
	c.runningAll++
	c.maxRunning[g] = max(c.maxRunning[g], c.running[g])
	c.maxAnyGroup = max(c.maxAnyGroup, c.runningAll)
}

func (c *conversations) end(ev processor.Event, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := ev.Envelope.GroupID()
	c.running[g]--
	c.runningAll--
	if ok {
		c.done[g] = append(c.done[g], ev.Envelope.WAMID)
	}
}

func (c *conversations) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, d := range c.done {
		n += len(d)
	}
	return n
}

// On a FIFO queue: each conversation's events complete in the order sent, one
// at a time, even when one fails and is given back while its successors were
// received in the same batch (they are held back, not run); two conversations
// run at once.
func TestFIFOConversationOrder(t *testing.T) {
	t.Parallel()
	e := newFIFOEnv(t, 10*time.Second)
	const n = 6
	var want = map[string][]string{}
	for i := range n {
		for _, c := range []string{"A", "B"} {
			w := c + string(rune('0'+i))
			e.sendFIFO(c, w)
			want["PNID:"+c] = append(want["PNID:"+c], w)
		}
	}
	conv := &conversations{done: map[string][]string{}, running: map[string]int{}, maxRunning: map[string]int{}}
	var failedOnce sync.Once
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		conv.begin(ev)
		// Long enough for the other conversation's first event to overlap.
		time.Sleep(100 * time.Millisecond)
		var err error
		if ev.Envelope.WAMID == "A1" {
			failedOnce.Do(func() { err = errors.New("injected failure of A1's first run") })
		}
		conv.end(ev, err == nil)
		return err
	})
	r := e.start(processor.Options{RetryBase: time.Second, RetryMax: time.Second}, h)
	eventually(t, 30*time.Second, "every event done", func() bool { return conv.count() == 2*n })
	r.stop(t, 10*time.Second)

	conv.mu.Lock()
	defer conv.mu.Unlock()
	for g, w := range want {
		if !slices.Equal(conv.done[g], w) {
			t.Errorf("conversation %s completed in the order %v, want %v", g, conv.done[g], w)
		}
		if conv.maxRunning[g] != 1 {
			t.Errorf("conversation %s: %d handlers ran at once, want 1", g, conv.maxRunning[g])
		}
	}
	if conv.maxAnyGroup < 2 {
		t.Errorf("at most %d handlers ran at once: the two conversations never ran in parallel", conv.maxAnyGroup)
	}
	held := result(t, r, processor.ResultHeldBack)
	if held < 1 {
		t.Errorf("held_back = %v: A1's successors received with it were not held back", held)
	}
	t.Logf("held back %v messages; retries %v", held, result(t, r, processor.ResultRetry))
	if d := e.depth(e.queueURL); d != 0 {
		t.Errorf("queue holds %d messages", d)
	}
}
