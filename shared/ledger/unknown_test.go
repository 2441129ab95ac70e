package ledger_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/ledger"
)

// unreadable sends each conditional write twice (a landed write whose reply was
// lost, retried by the SDK) and, while failReads is set, answers every read
// with throttling: the ledger cannot tell a landed retry from a lost claim.
type unreadable struct {
	doubleSender
	failReads *atomic.Bool
}

func (u unreadable) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if u.failReads.Load() {
		return nil, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "slow down", Fault: smithy.FaultClient}
	}
	return u.doubleSender.GetItem(ctx, in, o...)
}

// (Extend is absent: its condition holds for its own retry, so a landed
// extension never fails its condition.)
//
// A fenced write whose condition fails while the read that explains it fails
// too is an unknown outcome, retried, never "lease lost"; once reads work the
// retry finds its own landed write.
func TestUnknownOutcomeIsNotLeaseLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, _ := newStore(t, ledger.Options{})
	var failReads atomic.Bool
	s := storeOver(t, plain, func(db ledger.DB) ledger.DB { return unreadable{doubleSender{db}, &failReads} }, ledger.Options{})
	writes := []struct {
		name  string
		write func(c *ledger.Claim) error
		want  ledger.State
	}{
		{"complete", func(c *ledger.Claim) error { return s.Complete(ctx, *c) }, ledger.StateDone},
		{"fail", func(c *ledger.Claim) error { return s.Fail(ctx, *c, "permanent") }, ledger.StateFailed},
		{"give back", func(c *ledger.Claim) error { return s.GiveBack(ctx, *c, "retry") }, ledger.StateQueued},
	}
	for _, w := range writes {
		key := "msg#unknown-" + w.name
		c, err := plain.Claim(ctx, key, "p", "", time.Minute, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		failReads.Store(true)
		err = w.write(&c)
		if errors.Is(err, ledger.ErrLeaseLost) || !errors.Is(err, ledger.ErrOutcomeUnknown) {
			t.Fatalf("%s with its reply lost and the read throttled: %v, want ErrOutcomeUnknown, not ErrLeaseLost", w.name, err)
		}
		if !awserr.Transient(err) {
			t.Errorf("%s: %v is not transient, so the processor would not retry it", w.name, err)
		}
		failReads.Store(false)
		if err := w.write(&c); err != nil {
			t.Fatalf("%s retried once reads work: %v, want its landed write recognised", w.name, err)
		}
		mustState(t, plain, key, w.want)
	}
}

// A give-back whose first try landed is recognised as ours; another claim's
// give-back is still refused.
func TestGiveBackRetryThatLandedIsOurs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, _ := newStore(t, ledger.Options{})
	s := storeOver(t, plain, func(db ledger.DB) ledger.DB { return doubleSender{db} }, ledger.Options{})
	c, err := plain.Claim(ctx, "msg#giveback", "p", "", time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.GiveBack(ctx, c, "retry"); err != nil {
		t.Fatalf("give back whose retry failed the condition: %v, want success", err)
	}
	mustState(t, plain, "msg#giveback", ledger.StateQueued)
	c2, err := plain.Claim(ctx, "msg#giveback", "q", "", time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.GiveBack(ctx, c, "stale"); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("give back by the earlier claim after a new one: %v, want ErrLeaseLost", err)
	}
	if it := mustState(t, plain, "msg#giveback", ledger.StateProcessing); it.Owner != "q" || it.Attempt != c2.Attempt {
		t.Fatalf("item %+v, want held by q at attempt %d", it, c2.Attempt)
	}
}

// Retry counts a handler failure, GiveBack does not; both count a give-back,
// and a claim that ended with neither (nor Complete or Fail) was interrupted.
func TestClaimCountsHowClaimsEnded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, clock := newStore(t, ledger.Options{})
	const k = "msg#counted"
	c, err := s.Claim(ctx, k, "p", "", time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retry(ctx, c, "handler error"); err != nil {
		t.Fatal(err)
	}
	if c, err = s.Claim(ctx, k, "p", "", time.Minute, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.GiveBack(ctx, c, "shutdown"); err != nil {
		t.Fatal(err)
	}
	if _, err = s.Claim(ctx, k, "p", "", time.Minute, time.Time{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute) // that claim's process died: its lease lapses
	c, err = s.Claim(ctx, k, "q", "", time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempt != 4 || c.Failures != 1 || c.GivenBack != 2 || c.Interrupted() != 1 {
		t.Fatalf("claim %+v (interrupted %d), want attempt 4, 1 failure, 2 give-backs, 1 interruption", c, c.Interrupted())
	}
	if it := mustState(t, s, k, ledger.StateProcessing); it.Failures != 1 || it.GivenBack != 2 {
		t.Fatalf("item %+v, want failures 1 and given_back 2", it)
	}
}
