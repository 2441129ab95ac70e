package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wahook/wahook/shared/ledger"
)

// A live request renews what it owns: a sibling never takes over an item whose
// owner is alive, however long its send takes; only an unrenewed item is stale.
func TestRenewKeepsALiveOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := ledger.Options{ResendWindow: 5 * time.Second, InFlightWait: 200 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	s, clk := newStore(t, opts)
	r, err := s.Acquire(ctx, "msg#live")
	if err != nil {
		t.Fatal(err)
	}
	// Two windows pass; the owner renews every window/3.
	for range 6 {
		clk.Advance(opts.ResendWindow / 3)
		if ok, err := s.Renew(ctx, r); !ok || err != nil {
			t.Fatalf("renew: %v %v", ok, err)
		}
	}
	if a, err := s.Admit(ctx, "msg#live"); !errors.Is(err, ledger.ErrInFlight) {
		t.Fatalf("duplicate of a live, renewing owner's item: %+v %v, want ErrInFlight (no take over)", a, err)
	}
	if ok, err := s.MarkQueued(ctx, r); !ok || err != nil {
		t.Fatalf("owner marks queued after its renewals: %v %v", ok, err)
	}
	if ok, err := s.Renew(ctx, r); ok || err != nil {
		t.Fatalf("renew of a queued item = %v %v, want false", ok, err)
	}

	// The owner stops renewing (it crashed): one window later the item is stale.
	r2, err := s.Acquire(ctx, "msg#stalled")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(opts.ResendWindow)
	a, err := s.Admit(ctx, "msg#stalled")
	if err != nil || a.Receipt == nil || !a.Receipt.TakenOver {
		t.Fatalf("duplicate of an unrenewed item: %+v %v, want take over", a, err)
	}
	if ok, err := s.Renew(ctx, r2); ok || err != nil {
		t.Fatalf("renew by the overtaken owner = %v %v, want false", ok, err)
	}
}

// A Renew whose reply was lost is retried by the SDK; the retry must still find
// the item ours, and so must the MarkQueued after it.
func TestRetriedRenewIsStillOurs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, _ := newStore(t, ledger.Options{})
	twice := storeOver(t, plain, func(db ledger.DB) ledger.DB { return doubleSender{db} }, ledger.Options{})
	r, err := plain.Acquire(ctx, "msg#renewed")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // the renewal's stamp differs from the put's
	if ok, err := twice.Renew(ctx, r); !ok || err != nil {
		t.Fatalf("renew whose retry landed again: %v %v, want true", ok, err)
	}
	if ok, err := plain.MarkQueued(ctx, r); !ok || err != nil {
		t.Fatalf("mark queued after a renewal: %v %v, want true", ok, err)
	}
	mustState(t, plain, "msg#renewed", ledger.StateQueued)
}

// batchCounter counts BatchGetItem calls and the keys each asked for, and
// refuses single reads: Await reads keys together.
type batchCounter struct {
	ledger.DB
	mu    sync.Mutex
	calls []int
	gets  int
}

func (b *batchCounter) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	n := 0
	for _, ka := range in.RequestItems {
		n += len(ka.Keys)
	}
	b.mu.Lock()
	b.calls = append(b.calls, n)
	b.mu.Unlock()
	return b.DB.BatchGetItem(ctx, in, o...)
}

func (b *batchCounter) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	b.mu.Lock()
	b.gets++
	b.mu.Unlock()
	return b.DB.GetItem(ctx, in, o...)
}

// A duplicate request waits for all of a sibling's keys together, one read for
// all of them a round, and stays patient while the sibling keeps queueing them
// even past InFlightWait in total.
func TestAwaitReadsSiblingKeysTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// InFlightWait leaves a busy machine's slow call room; the sibling's whole
	// run takes longer than it.
	opts := ledger.Options{ResendWindow: 30 * time.Second, InFlightWait: 2 * time.Second, PollInterval: 10 * time.Millisecond}
	sibling, _ := newStore(t, opts)
	var counter *batchCounter
	s := storeOver(t, sibling, func(db ledger.DB) ledger.DB { counter = &batchCounter{DB: db}; return counter }, opts)

	const n = 150 // more than one BatchGetItem's 100 keys
	var owned []ledger.Receipt
	var tried []ledger.Receipt
	for i := range n {
		key := fmt.Sprintf("msg#sib-%d", i)
		r, err := sibling.Acquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		owned = append(owned, r)
		mine, err := s.Acquire(ctx, key)
		if !errors.Is(err, ledger.ErrExists) {
			t.Fatalf("second acquire: %v", err)
		}
		tried = append(tried, mine)
	}
	// The sibling queues one key every 20ms: 3s in all, more than
	// InFlightWait, but never a pause as long as it.
	done := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(done)
		for _, r := range owned {
			if ok, err := sibling.MarkQueued(ctx, r); !ok || err != nil {
				t.Errorf("sibling mark queued %s: %v %v", r.Key, ok, err)
			}
			time.Sleep(20 * time.Millisecond) // the sibling's pace
		}
	}()
	adms, errs := s.Await(ctx, tried, nil)
	<-done
	if took := time.Since(began); took <= opts.InFlightWait {
		t.Logf("the sibling took only %v: the wait was not tested past InFlightWait", took)
	}
	for i, a := range adms {
		if errs[i] != nil || !a.Duplicate || a.State != ledger.StateQueued {
			t.Fatalf("%s: %+v %v, want a queued duplicate", tried[i].Key, a, errs[i])
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.gets != 0 {
		t.Errorf("%d single GetItem calls, want reads of all keys together", counter.gets)
	}
	if len(counter.calls) < 2 || max(counter.calls[0], counter.calls[1]) != 100 || min(counter.calls[0], counter.calls[1]) != n-100 {
		t.Errorf("BatchGetItem key counts %v, want the first round to read all %d keys (100 + %d)", counter.calls, n, n-100)
	}
	t.Logf("%d keys decided in %d BatchGetItem calls", n, len(counter.calls))
}

// Read answers for many keys in calls of at most 100 keys, several at once,
// and leaves out the keys that have no item.
func TestReadManyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, _ := newStore(t, ledger.Options{})
	var counter *batchCounter
	s := storeOver(t, owner, func(db ledger.DB) ledger.DB { counter = &batchCounter{DB: db}; return counter }, ledger.Options{})
	const n = 350
	var keys []string
	want := map[string]ledger.State{}
	tokens := map[string]string{} // the receipt token of each received item
	for i := range n {
		key := fmt.Sprintf("msg#read-%d", i)
		keys = append(keys, key)
		if i%3 == 0 {
			continue // no item
		}
		r, err := owner.Acquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = ledger.StateReceived
		tokens[key] = r.Token
		if i%3 == 2 {
			if ok, err := owner.MarkQueued(ctx, r); !ok || err != nil {
				t.Fatalf("mark queued %s: %v %v", key, ok, err)
			}
			want[key] = ledger.StateQueued
		}
	}
	got, err := s.Read(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d items read, want %d (the keys without an item left out)", len(got), len(want))
	}
	for key, state := range want {
		if it, ok := got[key]; !ok || it.Key != key || it.State != state {
			t.Errorf("%s: %+v (found %v), want state %s", key, it, ok, state)
		}
		// What Await decides by: whose item it is and how old its stamp.
		if it := got[key]; it.ReceiptToken != tokens[key] || it.ReceivedAt.IsZero() {
			t.Errorf("%s: receipt token %q, received_at %v; want %q and the acquire's time", key, it.ReceiptToken, it.ReceivedAt, tokens[key])
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	total := 0
	for _, c := range counter.calls {
		total += c
		if c > 100 {
			t.Errorf("a BatchGetItem call asked for %d keys, over DynamoDB's 100", c)
		}
	}
	if len(counter.calls) != 4 || total != n {
		t.Errorf("BatchGetItem key counts %v, want 4 calls for the %d keys, each key once", counter.calls, n)
	}
}

// A sibling whose send is slow but who renews its item is alive: a duplicate
// keeps waiting for it past InFlightWait, and answers duplicate once it queues.
func TestAwaitWaitsWhileTheSiblingRenews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := ledger.Options{ResendWindow: 30 * time.Second, InFlightWait: time.Second, PollInterval: 10 * time.Millisecond}
	s, _ := newStore(t, opts)
	r, err := s.Acquire(ctx, "msg#renewing")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Renew every 100ms for three InFlightWaits, then queue.
		for end := time.Now().Add(3 * opts.InFlightWait); time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond) // the sibling's renewal interval
			if ok, err := s.Renew(ctx, r); !ok || err != nil {
				t.Errorf("renew: %v %v", ok, err)
			}
		}
		if ok, err := s.MarkQueued(ctx, r); !ok || err != nil {
			t.Errorf("mark queued: %v %v", ok, err)
		}
	}()
	a, err := s.Admit(ctx, "msg#renewing")
	<-done
	if err != nil || !a.Duplicate || a.State != ledger.StateQueued {
		t.Fatalf("duplicate of a renewing sibling: %+v %v, want a queued duplicate", a, err)
	}
}
