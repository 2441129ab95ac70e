package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/ledger"
)

// failKey claims key and fails it, returning the fence its dead letter records.
func failKey(t *testing.T, s *ledger.Store, key, owner string) (ledger.Claim, string) {
	t.Helper()
	ctx := context.Background()
	c, err := s.Claim(ctx, key, owner, "", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fail(ctx, c, "boom"); err != nil {
		t.Fatal(err)
	}
	return c, ledger.DoneBy(c.Owner, c.Attempt)
}

// TestReopenRaceHasOneWinner: two copies of one dead letter moved back at once
// (SQS redrive and a CLI replay, or a redrive delivered twice) reopen the
// failed key once; the loser is refused as a duplicate of a processing key.
func TestReopenRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	const key = "msg#reopen-race"
	_, fence := failKey(t, s, key, "p0")
	claims := make([]ledger.Claim, 8)
	wins, errs := race(8, func(i int) error {
		c, err := s.Reopen(ctx, key, "copy-"+string(rune('a'+i)), "", time.Minute, fence)
		claims[i] = c
		return err
	})
	if wins != 1 {
		t.Fatalf("reopen winners = %d, want 1 (errors %v)", wins, errs)
	}
	for _, err := range errs {
		var refused *ledger.ClaimRefusedError
		if !errors.As(err, &refused) || refused.State != ledger.StateProcessing {
			t.Fatalf("a losing reopen returned %v, want a refusal: processing", err)
		}
	}
	it := mustState(t, s, key, ledger.StateProcessing)
	if it.Attempt != 2 || it.SeriesStart != 1 || it.Reopens != 1 {
		t.Fatalf("after one reopen: attempt %d series_start %d reopens %d, want 2 1 1", it.Attempt, it.SeriesStart, it.Reopens)
	}
}

// TestReopenOnlyTheFailureTheCopyRecorded: a dead letter reopens the failure
// it was made for, once. After that failure was reopened and the new series
// failed again, a late second copy of the first dead letter is a duplicate:
// only the new failure's dead letter may reopen the key.
func TestReopenOnlyTheFailureTheCopyRecorded(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	const key = "msg#reopen-fence"
	_, fence := failKey(t, s, key, "p0")
	c, err := s.Reopen(ctx, key, "p1", "", time.Minute, fence)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fail(ctx, c, "boom again"); err != nil {
		t.Fatal(err)
	}
	var refused *ledger.ClaimRefusedError
	if _, err := s.Reopen(ctx, key, "p2", "", time.Minute, fence); !errors.As(err, &refused) || !refused.Finished() {
		t.Fatalf("a second copy of the first dead letter: %v, want a finished refusal (a duplicate)", err)
	}
	it := mustState(t, s, key, ledger.StateFailed)
	if it.Reopens != 1 || it.Attempt != 2 {
		t.Fatalf("reopens %d attempt %d, want 1 and 2", it.Reopens, it.Attempt)
	}
	if _, err := s.Reopen(ctx, key, "p3", "", time.Minute, ledger.DoneBy(c.Owner, c.Attempt)); err != nil {
		t.Fatalf("the new failure's dead letter: %v", err)
	}
}

func TestReopenStartsANewSeries(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	const key = "msg#reopen-series"
	first, fence := failKey(t, s, key, "p0")

	// A plain claim (a duplicate without dead-letter attributes) is refused.
	var refused *ledger.ClaimRefusedError
	if _, err := s.Claim(ctx, key, "p1", "", time.Minute, time.Now()); !errors.As(err, &refused) || !refused.Finished() {
		t.Fatalf("claim of a failed key: %v, want a finished refusal", err)
	}
	// A copy of another failure (a stale fence) is refused too.
	if _, err := s.Reopen(ctx, key, "p1", "", time.Minute, ledger.DoneBy("p0", 7)); !errors.As(err, &refused) || refused.State != ledger.StateFailed {
		t.Fatalf("reopen with a stale fence: %v, want refused: failed", err)
	}
	c, err := s.Reopen(ctx, key, "p1", "", time.Minute, fence)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempt != first.Attempt+1 || c.SeriesAttempt() != 1 || !c.Reopened {
		t.Fatalf("reopened claim %+v: want attempt %d, series attempt 1", c, first.Attempt+1)
	}
	// The series goes on under plain claims (a crash, an expired lease).
	if err := s.Retry(ctx, c, "retry me"); err != nil {
		t.Fatal(err)
	}
	c2, err := s.Claim(ctx, key, "p2", "", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c2.SeriesAttempt() != 2 || c2.Attempt != 3 {
		t.Fatalf("claim after reopen: attempt %d series attempt %d, want 3 and 2", c2.Attempt, c2.SeriesAttempt())
	}
	if err := s.Complete(ctx, c2); err != nil {
		t.Fatal(err)
	}
	// The dead letter moved back once more finds the key done.
	if _, err := s.Reopen(ctx, key, "p3", "", time.Minute, fence); !errors.As(err, &refused) || refused.State != ledger.StateDone {
		t.Fatalf("reopen of a done key: %v, want refused: done", err)
	}
	it := mustState(t, s, key, ledger.StateDone)
	var events []string
	for _, h := range it.History {
		events = append(events, h.Event)
	}
	if got := strings.Join(events, ","); got != "failed,reopened,retry" {
		t.Fatalf("history %q, want failed,reopened,retry (%+v)", got, it.History)
	}
}

// TestClaimRefusesExpiredEnvelope: a key whose item is gone (TTL) and whose
// envelope is older than the TTL is not created again.
func TestClaimRefusesExpiredEnvelope(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{TTL: 7 * 24 * time.Hour})
	ctx := context.Background()
	old := time.Now().Add(-8 * 24 * time.Hour)
	if _, err := s.Claim(ctx, "msg#old", "p", "", time.Minute, old); !errors.Is(err, ledger.ErrExpired) {
		t.Fatalf("claim of an unknown key with an old envelope: %v, want ErrExpired", err)
	}
	if _, err := s.Get(ctx, "msg#old"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the refused claim left an item: %v", err)
	}
	// An item that exists is claimable whatever the envelope's age.
	if _, err := s.Acquire(ctx, "msg#old-known"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "msg#old-known", "p", "", time.Minute, old); err != nil {
		t.Fatalf("claim of a known key with an old envelope: %v", err)
	}
	if _, err := s.Claim(ctx, "msg#young", "p", "", time.Minute, time.Now().Add(-6*24*time.Hour)); err != nil {
		t.Fatalf("claim of an unknown key with a young envelope: %v", err)
	}
}

func TestRejected(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	r, err := s.Acquire(ctx, "msg#big")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.MarkRejected(ctx, r, "too-large"); err != nil || !ok {
		t.Fatalf("mark rejected: %v %v", ok, err)
	}
	it := mustState(t, s, "msg#big", ledger.StateRejected)
	if it.Error != "too-large" || len(it.History) != 1 || it.History[0].Event != ledger.HistoryRejected {
		t.Fatalf("rejected item %+v", it)
	}
	adm, err := s.Admit(ctx, "msg#big")
	if err != nil || !adm.Duplicate || adm.State != ledger.StateRejected {
		t.Fatalf("admit of a rejected key: %+v %v, want a duplicate", adm, err)
	}
	var refused *ledger.ClaimRefusedError
	if _, err := s.Claim(ctx, "msg#big", "p", "", time.Minute, time.Now()); !errors.As(err, &refused) || !refused.Finished() {
		t.Fatalf("claim of a rejected key: %v, want a finished refusal", err)
	}
	if ok, err := s.Reject(ctx, "rejected#abc", "no-id"); err != nil || !ok {
		t.Fatalf("reject: %v %v", ok, err)
	}
	if ok, err := s.Reject(ctx, "rejected#abc", "no-id"); err != nil || ok {
		t.Fatalf("second reject of one key: %v %v, want false", ok, err)
	}
	mustState(t, s, "rejected#abc", ledger.StateRejected)
}

func TestCheckTTL(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name            string
		ttl, queue, dlq time.Duration
		ok              bool
	}{
		{"default against the stack", ledger.DefaultTTL, 14 * day, 14 * day, true},
		{"old default against the stack", 8 * day, 14 * day, 14 * day, false},
		{"meta's window rules short queues", 7 * day, day, day, true},
		{"under meta's window", 6 * day, day, day, false},
		{"exactly the sum", 8 * day, 4 * day, 4 * day, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ledger.CheckTTL(tc.ttl, tc.queue, tc.dlq)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckTTL(%s, %s, %s) = %v, want ok=%v", tc.ttl, tc.queue, tc.dlq, err, tc.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), tc.ttl.String()) || !strings.Contains(err.Error(), tc.queue.String())) {
				t.Fatalf("the error %q does not name the TTL and the retention", err)
			}
		})
	}
}

// TestRequeueIsIdempotentPerDeadLetter: an operator's replay requeues a
// failed key once per dead letter; run again (after a crash) it learns it
// did so already; a stale dead letter is refused.
func TestRequeueIsIdempotentPerDeadLetter(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, ledger.Options{})
	ctx := context.Background()
	const key = "msg#requeue"
	first, fence := failKey(t, s, key, "p0")
	if already, err := s.Requeue(ctx, key, fence); err != nil || already {
		t.Fatalf("requeue: already=%v %v", already, err)
	}
	it := mustState(t, s, key, ledger.StateQueued)
	if it.SeriesStart != first.Attempt || it.ReopenedFrom != fence {
		t.Fatalf("requeued item %+v", it)
	}
	if already, err := s.Requeue(ctx, key, fence); err != nil || !already {
		t.Fatalf("second requeue: already=%v %v, want already", already, err)
	}
	c, err := s.Claim(ctx, key, "p1", "", time.Minute, time.Now())
	if err != nil || c.SeriesAttempt() != 1 {
		t.Fatalf("claim after requeue: %+v %v, want series attempt 1", c, err)
	}
	if err := s.Complete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if already, err := s.Requeue(ctx, key, fence); err != nil || !already {
		t.Fatalf("requeue after done: already=%v %v, want already (this dead letter was replayed)", already, err)
	}
	if _, err := s.Requeue(ctx, key, ledger.DoneBy("p9", 9)); !errors.Is(err, ledger.ErrNotReopenable) {
		t.Fatalf("stale dead letter: %v, want ErrNotReopenable", err)
	}
}
