package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 2: two worker processes × 4 processors race for 1,000 distinct
// messages that arrive in concurrent bursts of batched webhooks, 30% of them
// re-sent → exactly 1,000 completions.
func TestConcurrentProcessors(t *testing.T) {
	n := form(1000, 3000)
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	w1 := s.StartWorker(harness.WorkerOptions{Processors: 4})
	w2 := s.StartWorker(harness.WorkerOptions{Processors: 4})
	g := harness.NewGen(seed(t))
	rng := g.Rand()

	payloads := g.Batches(g.Messages(n), 10)
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
		for _, d := range ds {
			retries += d.Retries()
		}
		bodies = bodies[k:]
	}
	sent := time.Since(began)
	settled := s.AwaitSettled(keys, 3*time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})

	checkWorkerTally(t, s, tally)
	// Each event's one message handed out once: a processor that skipped the
	// delete after Complete, or a redelivery for a lease that lapsed, shows
	// here as a second delivery. (A little slack for a visibility timeout
	// that a slow machine lets run out.)
	if got := s.Received(); got < int64(n) || got > int64(n+max(5, n/100)) {
		t.Errorf("SQS handed out %d messages for %d events, want each once", got, n)
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
	t.Logf("%d messages in %d webhooks (+%d re-sent, %d Meta-style retries): sent in %v, settled %v later (%.0f events/s end to end); "+
		"health processed_count %d+%d; %s", n, len(payloads), resent, retries, sent.Round(time.Millisecond),
		settled.Round(time.Millisecond), float64(n)/(sent+settled).Seconds(), h1.Processed(), h2.Processed(), tally)
}
