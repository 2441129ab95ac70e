package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
)

// gatedLedger holds the Acquire of one key until the queue has seen a send:
// a pipeline that sends only after the whole body is admitted never gets there.
type gatedLedger struct {
	*ledger.Store
	gateKey string
	sent    <-chan struct{}
}

func (l gatedLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	if key == l.gateKey {
		select {
		case <-l.sent:
		case <-time.After(10 * time.Second):
			return ledger.Receipt{}, fmt.Errorf("acquire %s: no batch was sent while admission was still running", key)
		}
	}
	return l.Store.Acquire(ctx, key)
}

// Sending starts as soon as the first ten events are admitted, not after the
// whole body.
func TestSendingStartsBeforeAdmissionEnds(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	sent := make(chan struct{})
	var once sync.Once
	s.queue.setFault(func(context.Context, *sqs.SendMessageBatchInput) ([]string, error) {
		once.Do(func() { close(sent) })
		return nil, nil
	})
	batch, err := webhook.Parse([]byte(messages("pipe", 40)))
	if err != nil {
		t.Fatal(err)
	}
	last := webhook.MessageKey("wamid-pipe-39")
	p := pipelineWith(t, s, gatedLedger{Store: s.store, gateKey: last, sent: sent})
	res := p.Process(t.Context(), batch, s.log)
	if res.Queued != 40 || !res.Complete() {
		t.Fatalf("result %+v, want 40 queued (the last admission waited for a send that never came?)", res)
	}
	if got := len(s.drain()); got != 40 {
		t.Errorf("%d messages in the queue, want 40", got)
	}
}

// jitteryLedger delays every Acquire by a random few milliseconds, so that
// concurrent admissions finish out of body order.
type jitteryLedger struct{ *ledger.Store }

func (l jitteryLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond) // scrambles completion order
	return l.Store.Acquire(ctx, key)
}

// On a FIFO queue the events of one message group are sent in body order,
// however the concurrent admissions finish.
func TestFIFOSendsEachGroupInBodyOrder(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{fifo: true})
	const n = 60
	batch, err := webhook.Parse([]byte(messages("order", n)))
	if err != nil {
		t.Fatal(err)
	}
	p := pipelineWith(t, s, jitteryLedger{s.store})
	if res := p.Process(t.Context(), batch, s.log); res.Queued != n {
		t.Fatalf("result %+v, want %d queued", res, n)
	}
	sentOrder := map[string][]int{} // group → body indexes in send order
	for _, c := range s.queue.calls() {
		for _, e := range c.Entries {
			env, err := envelope.Decode([]byte(aws.ToString(e.MessageBody)))
			if err != nil {
				t.Fatal(err)
			}
			var i int
			if _, err := fmt.Sscanf(env.Key, "msg#wamid-order-%d", &i); err != nil {
				t.Fatalf("key %q: %v", env.Key, err)
			}
			g := aws.ToString(e.MessageGroupId)
			sentOrder[g] = append(sentOrder[g], i)
		}
	}
	if len(sentOrder) < 2 {
		t.Fatalf("%d message groups, want several", len(sentOrder))
	}
	for g, order := range sentOrder {
		if !slices.IsSorted(order) {
			t.Errorf("group %s sent in order %v, want body order", g, order)
		}
	}
}

// Two identical large bodies at once: each request owns part of the keys and
// waits for the other's part together; both answer 200 and every event is
// sent exactly once.
func TestTwoIdenticalLargeBodies(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 300
	body := messages("twin", n)
	var replies [2]reply
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replies {
		wg.Go(func() {
			<-start
			replies[i] = s.post(body)
		})
	}
	close(start)
	wg.Wait()
	queued := 0
	for i, r := range replies {
		if r.code != http.StatusOK || r.summary.Received != n || r.summary.Queued+r.summary.Duplicates != n {
			t.Errorf("request %d: %d %+v, want 200 with %d queued or duplicate", i, r.code, r.summary, n)
		}
		queued += r.summary.Queued
	}
	if queued != n {
		t.Errorf("%d queued over both requests, want each of %d once", queued, n)
	}
	entries := 0
	for _, c := range s.queue.calls() {
		entries += len(c.Entries)
	}
	if entries != n {
		t.Errorf("%d entries sent, want %d (each event once)", entries, n)
	}
	if got := len(s.drain()); got != n {
		t.Errorf("%d messages in the queue, want %d", got, n)
	}
}

// countingLedger counts the Acquire calls the store refused (the key was
// taken), the keys read ahead and, when awaited is set, the keys awaited.
type countingLedger struct {
	*ledger.Store
	acquires, refused, read, awaited *atomic.Int64
}

func (l countingLedger) Await(ctx context.Context, tried []ledger.Receipt, owned func(i int, r ledger.Receipt)) ([]ledger.Admission, []error) {
	if l.awaited != nil {
		l.awaited.Add(int64(len(tried)))
	}
	return l.Store.Await(ctx, tried, owned)
}

func (l countingLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	l.acquires.Add(1)
	r, err := l.Store.Acquire(ctx, key)
	if errors.Is(err, ledger.ErrExists) {
		l.refused.Add(1)
	}
	return r, err
}

func (l countingLedger) Read(ctx context.Context, keys []string) (map[string]ledger.Item, error) {
	l.read.Add(int64(len(keys)))
	return l.Store.Read(ctx, keys)
}

// Two identical large bodies on two pipelines (two replicas) at once do not
// race each other for every key: each admits in its own order and, once a
// write is refused, reads ahead and leaves the keys it finds taken to Await.
// Body order and no reads, every key would be written by both: 1,000 refused.
func TestIdenticalBodiesDoNotWriteEachOthersKeys(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 1000
	batch, err := webhook.Parse([]byte(messages("split", n)))
	if err != nil {
		t.Fatal(err)
	}
	var acquires, refused, read atomic.Int64
	l := countingLedger{Store: s.store, acquires: &acquires, refused: &refused, read: &read}
	var results [2]pipeline.Result
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		p := pipelineWith(t, s, l)
		wg.Go(func() {
			<-start
			results[i] = p.Process(t.Context(), batch, s.log)
		})
	}
	close(start)
	wg.Wait()
	queued := 0
	for i, r := range results {
		if !r.Complete() || r.Queued+r.Duplicates != n {
			t.Errorf("request %d: %+v, want every event queued or a duplicate", i, r)
		}
		queued += r.Queued
	}
	entries := 0
	for _, c := range s.queue.calls() {
		entries += len(c.Entries)
	}
	if queued != n || entries != n {
		t.Errorf("%d queued over both requests, %d entries sent; want each of %d once", queued, entries, n)
	}
	t.Logf("%d Acquire calls, %d refused; %d keys read ahead", acquires.Load(), refused.Load(), read.Load())
	if got := refused.Load(); got > n/4 {
		t.Errorf("%d of the %d Acquire calls refused (the key taken by the other request), want at most %d: "+
			"the two requests wrote each other's keys", got, acquires.Load(), n/4)
	}
}

// Meta's retry of a body that was queued already: once a write is refused,
// the keys read ahead as queued are duplicates there and then. Only the keys
// whose writes were refused (those in flight before the first refusal came
// back) are awaited, and read again; nothing is sent.
func TestKeysReadAheadAsQueuedAreNotAwaited(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 300
	batch, err := webhook.Parse([]byte(messages("again", n)))
	if err != nil {
		t.Fatal(err)
	}
	if res := pipelineWith(t, s, s.store).Process(t.Context(), batch, s.log); res.Queued != n {
		t.Fatalf("first delivery: %+v, want %d queued", res, n)
	}
	for i := range n { // the retry's premise: every key marked queued
		if key := webhook.MessageKey(fmt.Sprintf("wamid-again-%d", i)); s.state(key) != ledger.StateQueued {
			t.Fatalf("after the first delivery %s is %q, want queued", key, s.state(key))
		}
	}
	sent := len(s.queue.calls())
	var acquires, refused, read, awaited atomic.Int64
	l := countingLedger{Store: s.store, acquires: &acquires, refused: &refused, read: &read, awaited: &awaited}
	res := pipelineWith(t, s, l).Process(t.Context(), batch, s.log)
	if res != (pipeline.Result{Received: n, Duplicates: n}) {
		t.Errorf("retry: %+v, want all %d duplicates", res, n)
	}
	t.Logf("retry: %d Acquire calls, %d refused; %d keys read ahead, %d awaited", acquires.Load(), refused.Load(), read.Load(), awaited.Load())
	if got, want := awaited.Load(), refused.Load(); got != want {
		t.Errorf("%d keys awaited, want %d (those whose writes were refused): keys read ahead as queued were awaited too", got, want)
	}
	if refused.Load() >= n/2 || read.Load() > n {
		t.Errorf("%d writes refused, %d keys read ahead; want fewer than %d refused and at most %d read (each key once)", refused.Load(), read.Load(), n/2, n)
	}
	if got := len(s.queue.calls()); got != sent {
		t.Errorf("%d batches sent for the retry, want none", got-sent)
	}
}

// A live request whose send is slower than the resend window keeps its events
// (it renews them): a duplicate waits for it and answers 200, nothing is sent
// twice.
func TestSlowOwnerIsNotTakenOver(t *testing.T) {
	t.Parallel()
	// Renewals every window/3 leave a busy machine two thirds of a window (less
	// a renewal's own latency) of slack; the send timeout outlasts the hang.
	const window = 4 * time.Second
	s := newStack(t, options{resendWindow: window, inFlightWait: 20 * time.Second, sendTimeout: 30 * time.Second})
	release := make(chan struct{})
	var once sync.Once
	stalled := make(chan struct{})
	s.queue.setFault(func(ctx context.Context, _ *sqs.SendMessageBatchInput) ([]string, error) {
		first := false
		once.Do(func() { first = true; close(stalled) })
		if first {
			<-release // the owner's send hangs for several windows
		}
		return nil, nil
	})
	body := messages("slow", 5)
	owner := make(chan reply, 1)
	go func() { owner <- s.post(body) }()
	<-stalled
	dup := make(chan reply, 1)
	go func() { dup <- s.post(body) }()
	// One and a half windows pass while the owner's send hangs, then it completes.
	time.Sleep(window + window/2) // the span the owner must survive, not a wait for an outcome
	close(release)
	o, d := <-owner, <-dup
	if o.code != http.StatusOK || o.summary.Queued != 5 {
		t.Errorf("owner: %d %+v, want 200 with 5 queued", o.code, o.summary)
	}
	if d.code != http.StatusOK || d.summary != (server.Summary{Received: 5, Duplicates: 5}) {
		t.Errorf("duplicate: %d %+v, want 200 with 5 duplicates (a live owner is never taken over)", d.code, d.summary)
	}
	if got := len(s.drain()); got != 5 {
		t.Errorf("%d messages in the queue, want 5 (each event once)", got)
	}
}

// lostReplyLedger lands every Acquire of one key but reports a timeout, as an
// overloaded backend whose answer never came does.
type lostReplyLedger struct {
	*ledger.Store
	key string
}

func (l lostReplyLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	r, err := l.Store.Acquire(ctx, key)
	if key == l.key && err == nil {
		return r, fmt.Errorf("acquire %s: %w", key, context.DeadlineExceeded)
	}
	return r, err
}

// An Acquire that timed out but landed is released at once (fenced by its
// token): Meta's immediate retry queues the event instead of waiting out the
// resend window for a take-over.
func TestTimedOutAcquireThatLandedIsReleased(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{inFlightWait: 100 * time.Millisecond})
	key := webhook.MessageKey("wamid-lost-1")
	batch, err := webhook.Parse([]byte(messages("lost", 3)))
	if err != nil {
		t.Fatal(err)
	}
	res := pipelineWith(t, s, lostReplyLedger{Store: s.store, key: key}).Process(t.Context(), batch, s.log)
	if res.Queued != 2 || res.Failed != 1 {
		t.Fatalf("result %+v, want 2 queued and 1 failed", res)
	}
	if st := s.state(key); st != "" {
		t.Errorf("the landed acquire left state %q, want no item", st)
	}
	if r := s.post(messages("lost", 3)); r.code != http.StatusOK || r.summary.Queued != 1 || r.summary.Duplicates != 2 {
		t.Errorf("Meta's retry: %d %+v, want 200 with 1 queued and 2 duplicates", r.code, r.summary)
	}
}
