package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

// clock is a test clock that moves only when told.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// newStore makes a ledger table of its own and a store over it.
func newStore(t *testing.T, opts ledger.Options) (*ledger.Store, *clock) {
	t.Helper()
	ctx := context.Background()
	cl, err := emu.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	table := awstest.UniqueName("ledger")
	if err := resources.EnsureTable(ctx, cl.DynamoDB, resources.LedgerTableInput(table), zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	s, err := ledger.New(cl.DynamoDB, table, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// storeOver is a second store on of's table whose calls go through wrap(the
// emulator's client): the same ledger seen through a fault or a counter.
func storeOver(t *testing.T, of *ledger.Store, wrap func(ledger.DB) ledger.DB, opts ledger.Options) *ledger.Store {
	t.Helper()
	cl, err := emu.Clients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.New(wrap(cl.DynamoDB), of.Table(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustState(t *testing.T, s *ledger.Store, key string, want ledger.State) ledger.Item {
	t.Helper()
	it, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if it.State != want {
		t.Fatalf("%s state = %q, want %q (item %+v)", key, it.State, want, it)
	}
	return it
}

// race runs f from n goroutines released at once and counts the nil results.
func race(n int, f func(i int) error) (wins int, errs []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return wins, errs
}

func TestAcquireRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	for round := range 5 {
		key := fmt.Sprintf("msg#acquire-%d", round)
		wins, errs := race(50, func(int) error { _, err := s.Acquire(context.Background(), key); return err })
		if wins != 1 {
			t.Fatalf("round %d: %d winners, want 1", round, wins)
		}
		for _, err := range errs {
			if !errors.Is(err, ledger.ErrExists) {
				t.Fatalf("round %d: loser error %v, want ErrExists", round, err)
			}
		}
		it := mustState(t, s, key, ledger.StateReceived)
		if it.ExpiresAt.Before(time.Now().Add(7 * 24 * time.Hour)) {
			t.Fatalf("expires_at %v: not past Meta's retry window", it.ExpiresAt)
		}
	}
}

func TestClaimRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	for round := range 5 {
		key := fmt.Sprintf("msg#claim-%d", round)
		if round%2 == 0 { // half the rounds start from a queued item, half from none
			r, err := s.Acquire(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := s.MarkQueued(ctx, r); !ok || err != nil {
				t.Fatalf("mark queued: %v %v", ok, err)
			}
		}
		owners := make([]string, 50)
		wins, errs := race(50, func(i int) error {
			owners[i] = fmt.Sprintf("p%d", i)
			_, err := s.Claim(ctx, key, owners[i], "", time.Minute, time.Time{})
			return err
		})
		if wins != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, wins)
		}
		for _, err := range errs {
			var refused *ledger.ClaimRefusedError
			if !errors.As(err, &refused) || refused.State != ledger.StateProcessing || refused.Owner == "" {
				t.Fatalf("round %d: loser error %v, want refusal naming the holder", round, err)
			}
		}
		it := mustState(t, s, key, ledger.StateProcessing)
		if it.Attempt != 1 {
			t.Fatalf("attempt = %d, want 1", it.Attempt)
		}
	}
}

func TestClaimLeases(t *testing.T) {
	t.Parallel()
	s, clk := newStore(t, ledger.Options{})
	ctx := context.Background()
	first, err := s.Claim(ctx, "msg#lease", "a", "", 10*time.Second, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	// A live lease is refused with the holder and its deadline.
	_, err = s.Claim(ctx, "msg#lease", "b", "", 10*time.Second, time.Time{})
	var refused *ledger.ClaimRefusedError
	if !errors.As(err, &refused) || refused.Owner != "a" || refused.Finished() ||
		refused.LeaseUntil.UnixMilli() != first.LeaseUntil.UnixMilli() {
		t.Fatalf("claim of live lease: %v (%+v), want held by a until %v", err, refused, first.LeaseUntil)
	}

	// Once expired, another processor takes it over with the next attempt.
	clk.Advance(11 * time.Second)
	second, err := s.Claim(ctx, "msg#lease", "b", "", 10*time.Second, time.Time{})
	if err != nil {
		t.Fatalf("claim of expired lease: %v", err)
	}
	if second.Attempt != 2 {
		t.Fatalf("attempt = %d, want 2", second.Attempt)
	}

	// The first holder is fenced out of every write.
	if err := s.Extend(ctx, &first, time.Minute); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("extend by old owner: %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, first); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("complete by old owner: %v, want ErrLeaseLost", err)
	}
	if err := s.Fail(ctx, first, "x"); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("fail by old owner: %v, want ErrLeaseLost", err)
	}
	if err := s.GiveBack(ctx, first, ""); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("give back by old owner: %v, want ErrLeaseLost", err)
	}
	// Same owner, stale attempt: fenced too.
	stale := second
	stale.Attempt = 1
	if err := s.Complete(ctx, stale); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("complete with stale attempt: %v, want ErrLeaseLost", err)
	}

	before := second.LeaseUntil
	clk.Advance(time.Second)
	if err := s.Extend(ctx, &second, 10*time.Second); err != nil {
		t.Fatalf("extend by holder: %v", err)
	}
	if !second.LeaseUntil.After(before) {
		t.Fatalf("lease not moved: %v -> %v", before, second.LeaseUntil)
	}
	if got := mustState(t, s, "msg#lease", ledger.StateProcessing); got.LeaseUntil.UnixMilli() != second.LeaseUntil.UnixMilli() {
		t.Fatalf("stored lease %v, want %v", got.LeaseUntil, second.LeaseUntil)
	}
	if err := s.Complete(ctx, second); err != nil {
		t.Fatalf("complete: %v", err)
	}
	it := mustState(t, s, "msg#lease", ledger.StateDone)
	if it.Owner != "" || !it.LeaseUntil.IsZero() || it.DoneAt.IsZero() {
		t.Fatalf("done item keeps lease or lacks done_at: %+v", it)
	}
	// A finished key refuses claims as finished, even long after.
	clk.Advance(time.Hour)
	_, err = s.Claim(ctx, "msg#lease", "c", "", time.Second, time.Time{})
	if !errors.As(err, &refused) || !refused.Finished() || refused.State != ledger.StateDone {
		t.Fatalf("claim of done: %v, want finished refusal", err)
	}
	// Completing again with the same claim is idempotent; with the old one it is not.
	if err := s.Complete(ctx, second); err != nil {
		t.Fatalf("repeated complete by the finisher: %v, want nil", err)
	}
	if err := s.Complete(ctx, first); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("complete by the fenced-out claim after done: %v, want ErrLeaseLost", err)
	}
}

func TestClaimFromEveryStartingState(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()

	// No item at all: a send that timed out but did enqueue, then was released.
	if c, err := s.Claim(ctx, "msg#none", "p", "", time.Minute, time.Time{}); err != nil || c.Attempt != 1 {
		t.Fatalf("claim without item: %+v %v", c, err)
	}
	it := mustState(t, s, "msg#none", ledger.StateProcessing)
	if it.ReceivedAt.IsZero() || it.ExpiresAt.IsZero() {
		t.Fatalf("claim-created item lacks received_at or expires_at: %+v", it)
	}

	// Received but not yet marked queued: the worker was faster than ingest.
	r, err := s.Acquire(ctx, "msg#received")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(ctx, "msg#received", "p", "", time.Minute, time.Time{})
	if err != nil {
		t.Fatalf("claim of received: %v", err)
	}
	// Ingest's late bookkeeping must neither fail nor undo the claim.
	if ok, err := s.MarkQueued(ctx, r); ok || err != nil {
		t.Fatalf("late mark queued = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.Release(ctx, r); ok || err != nil {
		t.Fatalf("late release = %v, %v; want false, nil", ok, err)
	}
	mustState(t, s, "msg#received", ledger.StateProcessing)

	// Given back: claimable at once, next attempt.
	if err := s.GiveBack(ctx, c, "shutting down"); err != nil {
		t.Fatal(err)
	}
	if it := mustState(t, s, "msg#received", ledger.StateQueued); it.Owner != "" || it.Error != "shutting down" {
		t.Fatalf("given back item: %+v", it)
	}
	c2, err := s.Claim(ctx, "msg#received", "q", "", time.Minute, time.Time{})
	if err != nil || c2.Attempt != 2 {
		t.Fatalf("claim after give back: %+v %v", c2, err)
	}
	if err := s.Fail(ctx, c2, "poison"); err != nil {
		t.Fatal(err)
	}
	if it := mustState(t, s, "msg#received", ledger.StateFailed); it.Error != "poison" {
		t.Fatalf("failed item: %+v", it)
	}
	var refused *ledger.ClaimRefusedError
	if _, err := s.Claim(ctx, "msg#received", "r", "", time.Minute, time.Time{}); !errors.As(err, &refused) || !refused.Finished() {
		t.Fatalf("claim of failed: %v, want finished refusal", err)
	}
}

func TestAdmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := ledger.Options{ResendWindow: 5 * time.Second, InFlightWait: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond}

	t.Run("new then duplicate in every later state", func(t *testing.T) {
		t.Parallel()
		s, _ := newStore(t, opts)
		a, err := s.Admit(ctx, "msg#1")
		if err != nil || a.Receipt == nil || a.Duplicate {
			t.Fatalf("first admit: %+v %v", a, err)
		}
		if ok, err := s.MarkQueued(ctx, *a.Receipt); !ok || err != nil {
			t.Fatalf("mark queued: %v %v", ok, err)
		}
		var c ledger.Claim
		for _, step := range []struct {
			state ledger.State
			move  func(*ledger.Claim) error
		}{
			{ledger.StateQueued, nil},
			{ledger.StateProcessing, func(c *ledger.Claim) error {
				got, err := s.Claim(ctx, "msg#1", "p", "", time.Minute, time.Time{})
				*c = got
				return err
			}},
			{ledger.StateDone, func(c *ledger.Claim) error { return s.Complete(ctx, *c) }},
		} {
			if step.move != nil {
				if err := step.move(&c); err != nil {
					t.Fatal(err)
				}
			}
			d, err := s.Admit(ctx, "msg#1")
			if err != nil || !d.Duplicate || d.Receipt != nil || d.State != step.state {
				t.Fatalf("admit in %s: %+v %v", step.state, d, err)
			}
		}
	})

	t.Run("sibling that queues in time makes a duplicate", func(t *testing.T) {
		t.Parallel()
		s, _ := newStore(t, opts)
		r, err := s.Acquire(ctx, "msg#2")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan ledger.Admission, 1)
		go func() {
			a, err := s.Admit(ctx, "msg#2")
			if err != nil {
				t.Errorf("admit: %v", err)
			}
			done <- a
		}()
		if ok, err := s.MarkQueued(ctx, r); !ok || err != nil {
			t.Fatalf("mark queued: %v %v", ok, err)
		}
		if a := <-done; !a.Duplicate || a.State != ledger.StateQueued {
			t.Fatalf("admit while sibling queues: %+v", a)
		}
	})

	t.Run("crashed sibling is taken over only after the resend window", func(t *testing.T) {
		t.Parallel()
		s, clk := newStore(t, opts)
		crashed, err := s.Acquire(ctx, "msg#3") // put, then "crash" before the send
		if err != nil {
			t.Fatal(err)
		}
		// An immediate retry must not be told "duplicate" of an event never sent.
		if a, err := s.Admit(ctx, "msg#3"); !errors.Is(err, ledger.ErrInFlight) {
			t.Fatalf("immediate retry: %+v %v, want ErrInFlight", a, err)
		}
		mustState(t, s, "msg#3", ledger.StateReceived)
		clk.Advance(opts.ResendWindow)
		a, err := s.Admit(ctx, "msg#3")
		if err != nil || a.Receipt == nil || !a.Receipt.TakenOver {
			t.Fatalf("retry after window: %+v %v, want take over", a, err)
		}
		// The crashed writer, should it wake, can no longer touch the item.
		if ok, err := s.Release(ctx, crashed); ok || err != nil {
			t.Fatalf("stale release = %v %v", ok, err)
		}
		if ok, err := s.MarkQueued(ctx, crashed); ok || err != nil {
			t.Fatalf("stale mark = %v %v", ok, err)
		}
		mustState(t, s, "msg#3", ledger.StateReceived)
		if ok, err := s.MarkQueued(ctx, *a.Receipt); !ok || err != nil {
			t.Fatalf("mark queued by taker: %v %v", ok, err)
		}
		mustState(t, s, "msg#3", ledger.StateQueued)
	})

	t.Run("concurrent takeovers have one winner", func(t *testing.T) {
		t.Parallel()
		s, clk := newStore(t, opts)
		if _, err := s.Acquire(ctx, "msg#4"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(opts.ResendWindow)
		var owners atomic.Int32
		wins, errs := race(20, func(int) error {
			a, err := s.Admit(ctx, "msg#4")
			if err == nil && a.Receipt != nil {
				owners.Add(1)
			}
			return err
		})
		// Every contender answers; exactly one got to send, the rest wait for it.
		if owners.Load() != 1 {
			t.Fatalf("%d takers (wins %d, errs %v), want 1", owners.Load(), wins, errs)
		}
		for _, err := range errs {
			if !errors.Is(err, ledger.ErrInFlight) {
				t.Fatalf("loser: %v, want ErrInFlight", err)
			}
		}
	})

	t.Run("released item is acquired again", func(t *testing.T) {
		t.Parallel()
		s, _ := newStore(t, opts)
		a, err := s.Admit(ctx, "msg#5")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Release(ctx, *a.Receipt); !ok || err != nil {
			t.Fatalf("release: %v %v", ok, err)
		}
		if _, err := s.Get(ctx, "msg#5"); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("after release: %v, want ErrNotFound", err)
		}
		if a, err := s.Admit(ctx, "msg#5"); err != nil || a.Receipt == nil {
			t.Fatalf("admit after release: %+v %v", a, err)
		}
	})
}

func TestEnsureIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl, err := emu.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := resources.Spec{
		LedgerTable: awstest.UniqueName("l"), MessagesTable: awstest.UniqueName("m"),
		QueueName: awstest.UniqueName("q"), DLQName: awstest.UniqueName("d"),
		VisibilityTimeout: 7 * time.Second, MaxReceiveCount: 3,
	}
	var urls []resources.Provisioned
	for range 2 {
		p, err := resources.Ensure(ctx, cl.DynamoDB, cl.SQS, spec, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, p)
	}
	if urls[0] != urls[1] || urls[0].QueueURL == "" || urls[0].DLQURL == "" {
		t.Fatalf("ensure twice: %+v", urls)
	}
	dlq, err := resources.DeadLetterURL(ctx, cl.SQS, urls[0].QueueURL)
	if err != nil || dlq != urls[0].DLQURL {
		t.Fatalf("dlq from redrive policy = %q %v, want %q", dlq, err, urls[0].DLQURL)
	}
}

// doubleSender sends every conditional write twice and answers with the second
// result, as the SDK does when it retries a request whose first attempt landed
// but whose answer was lost.
type doubleSender struct{ ledger.DB }

func (d doubleSender) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := d.DB.PutItem(ctx, in, o...); err != nil {
		return nil, err
	}
	return d.DB.PutItem(ctx, in, o...)
}

func (d doubleSender) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if _, err := d.DB.UpdateItem(ctx, in, o...); err != nil {
		return nil, err
	}
	return d.DB.UpdateItem(ctx, in, o...)
}

func TestRetriedWritesThatLandedAreOurs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, _ := newStore(t, ledger.Options{})
	s := storeOver(t, plain, func(db ledger.DB) ledger.DB { return doubleSender{db} }, ledger.Options{InFlightWait: 50 * time.Millisecond})
	a, err := s.Admit(ctx, "msg#retried")
	if err != nil || a.Receipt == nil {
		t.Fatalf("admit whose retry failed the condition: %+v %v, want our receipt", a, err)
	}
	c, err := s.Claim(ctx, "msg#retried", "p", "", time.Minute, time.Time{})
	if err != nil || c.Attempt != 1 {
		t.Fatalf("claim whose retry failed the condition: %+v %v", c, err)
	}
	if err := s.Extend(ctx, &c, 2*time.Minute); err != nil {
		t.Fatalf("extend: %v", err)
	}
	if err := s.Complete(ctx, c); err != nil {
		t.Fatalf("complete: %v", err)
	}
	mustState(t, plain, "msg#retried", ledger.StateDone)
	// Another claim's completion is still refused.
	other := c
	other.Owner = "q"
	if err := s.Complete(ctx, other); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("complete by another: %v, want ErrLeaseLost", err)
	}
}

// One processor may see the same key twice in one receive batch (a double send);
// its concurrent claims must still have one winner.
func TestClaimRaceBySameOwnerHasOneWinner(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	for round := range 5 {
		key := fmt.Sprintf("msg#same-owner-%d", round)
		wins, _ := race(50, func(int) error {
			_, err := s.Claim(context.Background(), key, "host-1-abc-p0", "", time.Minute, time.Time{})
			return err
		})
		if wins != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, wins)
		}
	}
}

// A processor that retries its claim after a timeout (the first write landed,
// the answer was lost) passes the same token and gets its claim back; another
// delivery of the key, with another token, is refused even by the same owner.
func TestClaimRetriedByCallerWithSameToken(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	first, err := s.Claim(ctx, "msg#tok", "p", "delivery-1", time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Claim(ctx, "msg#tok", "p", "delivery-1", time.Minute, time.Time{})
	if err != nil || again.Attempt != first.Attempt {
		t.Fatalf("retried claim: %+v %v, want attempt %d back", again, err, first.Attempt)
	}
	var refused *ledger.ClaimRefusedError
	if _, err := s.Claim(ctx, "msg#tok", "p", "delivery-2", time.Minute, time.Time{}); !errors.As(err, &refused) || refused.Owner != "p" {
		t.Fatalf("other delivery: %v, want refusal", err)
	}
	if err := s.Complete(ctx, again); err != nil {
		t.Fatalf("complete with the recovered claim: %v", err)
	}
}
