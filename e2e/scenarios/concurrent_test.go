package scenarios

import (
	"strings"
	"testing"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 2: two worker processes × 4 processors race for 1,000 distinct
// messages that arrive in concurrent bursts of batched webhooks, 30% of them
// re-sent → exactly 1,000 completions. Ingest sends each event once, so the
// processors also get concurrent copies: for a fifth of the events a second
// copy goes straight into the queue as soon as ingest accepted the first,
// while the handlers (slowed a little) are still running: only the ledger's
// claim, refusing a live lease, keeps those from running twice.
func TestConcurrentProcessors(t *testing.T) {
	t.Parallel()
	n := form(1000, 3000)
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	wo := harness.WorkerOptions{Processors: 4, AuditDelay: 100 * time.Millisecond}
	w1 := s.StartWorker(wo)
	w2 := s.StartWorker(wo)
	g := harness.NewGen(seed(t))
	rng := g.Rand()

	msgs := g.Messages(n)
	payloads := g.Batches(msgs, 10)
	// The second copies, by body: sent right after the body's burst.
	copies := map[string][]sqstypes.SendMessageBatchRequestEntry{}
	extra := 0
	for _, p := range payloads {
		var dup []harness.Message
		for _, m := range p.Messages {
			if rng.Float64() < 0.2 {
				dup = append(dup, m)
			}
		}
		if len(dup) > 0 {
			_, entries := envelopeEntries(t, dup)
			copies[string(p.JSON())] = append(copies[string(p.JSON())], entries...)
			extra += len(entries)
		}
	}
	bodies := bodiesOf(payloads)
	resent := 0
	for i := range payloads {
		if rng.Float64() < 0.30 {
			bodies = append(bodies, bodies[i])
			resent++
		}
	}
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	keys := keysOf(payloads)

	const burst, conc = 60, 20
	c := s.Client()
	ctx, cancel := contextWithTimeout(t, 3*time.Minute)
	defer cancel()
	began := time.Now()
	retries := 0
	for len(bodies) > 0 {
		k := min(burst, len(bodies))
		ds, err := c.DeliverAll(ctx, bodies[:k], conc)
		if err != nil {
			t.Fatalf("burst: %v", err)
		}
		var second []sqstypes.SendMessageBatchRequestEntry
		for i, d := range ds {
			retries += d.Retries()
			second = append(second, copies[string(bodies[i])]...)
			delete(copies, string(bodies[i])) // a re-sent body's copy goes once
		}
		sendEntries(t, s, second)
		bodies = bodies[k:]
	}
	sent := time.Since(began)
	settled := s.AwaitSettled(keys, 3*time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})

	checkWorkerTally(t, s, tally)
	// Each message handed out once, a second copy at most twice (refused
	// while its twin's lease is live, it comes back at the lease's end to be
	// deleted as a duplicate): a processor that skipped the delete after
	// Complete, or a redelivery for a lease that lapsed, shows here as one
	// delivery too many. (A little slack for a visibility timeout that a
	// slow machine lets run out.)
	if got := s.Received(); got < int64(n+extra) || got > int64(n+2*extra+max(5, n/100)) {
		t.Errorf("SQS handed out %d messages for %d events and %d second copies, want each event's message once, each copy at most twice", got, n, extra)
	}
	dups, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_duplicates_total")
	if err != nil {
		t.Fatal(err)
	}
	conflicts, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_claim_conflicts_total")
	if err != nil {
		t.Fatal(err)
	}
	if conflicts == 0 {
		t.Errorf("none of %d second copies met its twin's live lease: the scenario did not race two claims", extra)
	}
	// Both processes took part, and several processors in each.
	owners := map[string]map[string]int{}
	audit, err := s.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audit {
		for _, p := range a.Attempts {
			proc := p[:strings.LastIndex(p, "-p")]
			if owners[proc] == nil {
				owners[proc] = map[string]int{}
			}
			owners[proc][p]++
		}
	}
	if len(owners) != 2 {
		t.Errorf("events handled by %d worker processes, want both", len(owners))
	}
	for proc, ps := range owners {
		total := 0
		for _, k := range ps {
			total += k
		}
		t.Logf("worker %s: %d events over %d processors", proc, total, len(ps))
	}
	h1, err1 := w1.Health(t.Context())
	h2, err2 := w2.Health(t.Context())
	if err1 != nil || err2 != nil {
		t.Fatalf("worker health: %v, %v", err1, err2)
	}
	t.Logf("%d messages in %d webhooks (+%d re-sent, %d Meta-style retries, %d second copies in the queue: %v claims refused by a live lease, %v duplicates deleted): "+
		"sent in %v, settled %v later (%.0f events/s end to end); health processed_count %d+%d; %s", n, len(payloads), resent, retries, extra,
		conflicts, dups, sent.Round(time.Millisecond), settled.Round(time.Millisecond), float64(n)/(sent+settled).Seconds(),
		h1.Processed(), h2.Processed(), tally)
}
