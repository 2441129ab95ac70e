package scenarios

import (
	"testing"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/e2e/harness"
)

// Standard SQS queues deliver at least once: the same event can reach two
// processors at the same time (SQS's own redelivery, or ingest sending twice
// after taking over a crashed request's event). Here every envelope is put in
// the queue three times, straight past ingest, while handlers are slowed so
// that copies overlap across 2 workers × 4 processors. Only the ledger's claim
// stands between those copies and a double run: each key must still be handled
// exactly once, under attempt 1, and every extra copy deleted as a duplicate
// (a run whose lease ran out on a busy machine may be followed by a second
// one under the next attempt, which the invariants allow and count).
func TestQueueDuplicateDelivery(t *testing.T) {
	t.Parallel()
	n := form(150, 600)
	const copies = 3
	s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
	w1 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	w2 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	g := harness.NewGen(seed(t))

	keys, one := envelopeEntries(t, g.Messages(n))
	if len(keys) != n {
		t.Fatalf("generated %d keys, want %d", len(keys), n)
	}
	var entries []sqstypes.SendMessageBatchRequestEntry
	for range copies {
		entries = append(entries, one...)
	}
	rng := g.Rand()
	rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	sendEntries(t, s, entries)

	settled := s.AwaitSettled(keys, 2*time.Minute)
	// Reinvocable is nil: a second run of any key, even under a new claim,
	// fails — unless its earlier claim's lease ran out (see harness.Expect).
	tally := s.CheckInvariants(harness.Expect{Keys: keys})
	if tally.MaxAttempt != 1 && tally.LeaseLost == 0 {
		t.Errorf("highest ledger attempt %d, want 1: no copy may claim a key another copy holds or finished", tally.MaxAttempt)
	}
	metric := func(name string, labels ...string) int {
		v, err := s.SumMetric(t.Context(), harness.RoleWorker, name, labels...)
		if err != nil {
			t.Fatal(err)
		}
		return int(v)
	}
	// Each key's one completing run deletes one of its copies; every other
	// copy must be deleted as a duplicate. A copy is counted again when it
	// comes back after its delete was too late for the visibility timeout (a
	// busy machine), so the count may exceed the extra copies, never fall short.
	dups, done := metric("wahook_worker_duplicates_total"), metric("wahook_worker_events_total", "result", "done")
	if done != n {
		t.Errorf("workers completed %d runs, want one per event (%d)", done, n)
	}
	if dups < n*(copies-1) {
		t.Errorf("workers deleted %d duplicate copies, want at least the %d extra copies", dups, n*(copies-1))
	}
	checkWorkerTally(t, s, tally)
	h1, err1 := w1.Health(t.Context())
	h2, err2 := w2.Health(t.Context())
	if err1 != nil || err2 != nil {
		t.Fatalf("worker health: %v, %v", err1, err2)
	}
	t.Logf("%d events × %d copies in the queue: settled in %v; %d duplicate copies deleted (%d counted again after a late delete); processed_count %d+%d; %s",
		n, copies, settled.Round(time.Millisecond), dups, dups-n*(copies-1), h1.Processed(), h2.Processed(), tally)
}
