package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 7: DynamoDB unreachable for every process for a while, with a
// backlog in the queue and webhooks arriving → ingest answers 503 (never 200
// for an event it could not record) and reports itself degraded; Meta's
// retries get a 200 once DynamoDB is back; the workers' breaker keeps the
// backlog out of the DLQ; everything is processed once.
func TestDynamoDBOutage(t *testing.T) {
	t.Parallel()
	outage := form(12*time.Second, 20*time.Second)
	fault := form(harness.FaultRefuse, harness.FaultBlackhole)
	// Short visibility and a low redrive limit: without the breaker, the
	// backlog would be received 6 times in 12 s and reach the DLQ.
	const visibility = 2 * time.Second
	s := harness.NewStack(t, harness.StackOptions{Visibility: visibility, MaxReceiveCount: 5, MaxAttempts: 3})
	in1, in2 := s.StartIngest(nil), s.StartIngest(nil)
	w1 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	w2 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	procs := []*harness.Process{in1, in2, w1, w2}
	g := harness.NewGen(seed(t))
	ctx := t.Context()
	c := s.Client()

	// A backlog: more than the workers finish before the cut.
	backlog := g.Batches(g.Messages(200), 10)
	keys := keysOf(backlog)
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.DeliverAll(dctx, bodiesOf(backlog), 8); err != nil {
		t.Fatal(err)
	}

	for _, p := range procs {
		if err := p.DynamoDB.Apply(fault); err != nil {
			t.Fatal(err)
		}
	}
	cutAt := time.Now()
	q, _, err := s.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DynamoDB %s for every process, for %v, with %s in the queue", fault, outage, q)

	// Webhooks keep arriving during the outage, delivered like Meta: retried
	// until a 200, long after the outage if need be.
	during := g.Batches(g.Messages(40), 4)
	keys = append(keys, keysOf(during)...)
	// First attempts spread over the outage.
	sp := deliverSpread(ctx, c, bodiesOf(during), outage)

	// Health while cut: ingest degraded or unhealthy, DynamoDB disconnected.
	harness.Eventually(t, outage, "ingest reports DynamoDB down", func(ctx context.Context) error {
		for _, in := range []*harness.Process{in1, in2} {
			h, err := in.Health(ctx)
			if err != nil {
				return err
			}
			if h.Status == "healthy" || h.Components["dynamodb"].Status == "connected" {
				return fmt.Errorf("%s: %s, dynamodb %+v", in.Name, h.Status, h.Components["dynamodb"])
			}
		}
		return nil
	})
	harness.Eventually(t, outage, "workers' breakers open", func(ctx context.Context) error {
		for _, w := range []*harness.Process{w1, w2} {
			h, err := w.Health(ctx)
			if err != nil {
				return err
			}
			if h.Breaker.State != "open" || h.Status == "healthy" {
				return fmt.Errorf("%s: %s, breaker %s", w.Name, h.Status, h.Breaker.State)
			}
		}
		return nil
	})
	ih, _ := in1.Health(ctx)
	wh, _ := w1.Health(ctx)

	// Hold the outage for its full length: its duration is the scenario.
	select {
	case <-time.After(time.Until(cutAt.Add(outage))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	// Nothing completes while the ledger is away: the count the workers
	// resume from.
	doneBefore := workerDone(t, s)
	for _, p := range procs {
		if err := p.DynamoDB.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	restoredAt := time.Now()
	// Recovery (the seed's "< 30 s after failure") is the system back at
	// work: the workers completing events again and every webhook Meta
	// retried accepted. How long the backlog then takes to drain is this
	// scenario's own load on this machine's CPU (reported below, not bound).
	resumed := harness.Eventually(t, 30*time.Second, "workers completing events after the restore", func(ctx context.Context) error {
		n, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_events_total", "result", "done")
		if err != nil {
			return err
		}
		if int(n) <= doneBefore {
			return fmt.Errorf("%v events done, as many as before the restore", n)
		}
		return nil
	})
	deliveries := sp.wait(t)
	var accepted time.Duration
	for _, d := range deliveries {
		if last := d.Final(); last.OK() {
			accepted = max(accepted, last.Start.Add(last.Latency).Sub(restoredAt))
		}
	}

	// Every answer whose whole life fell inside the outage must be a 503.
	settle := 2 * time.Second // calls already past DynamoDB when it went away
	var inside, status503, status200, other, late int
	var worst time.Duration
	for _, d := range deliveries {
		for _, a := range d.Attempts {
			end := a.Start.Add(a.Latency)
			if a.Start.After(cutAt.Add(settle)) && end.Before(restoredAt) {
				inside++
				worst = max(worst, a.Latency)
				switch {
				case a.Err == nil && a.Status == http.StatusServiceUnavailable:
					status503++
				case a.Err == nil && a.Status == http.StatusOK:
					status200++
				default:
					other++
				}
			}
			if end.After(restoredAt) && !a.OK() {
				late++
			}
		}
	}
	if inside == 0 || status503 == 0 {
		t.Errorf("no answer fell inside the outage (%d) or none was a 503 (%d)", inside, status503)
	}
	if status200 > 0 {
		t.Errorf("%d webhooks answered 200 while DynamoDB was unreachable: events that could not be recorded were acknowledged", status200)
	}
	if other > 0 {
		t.Errorf("%d answers inside the outage were neither 503 nor 200", other)
	}
	t.Logf("during the outage: %d answers, all 503 (slowest %v); ingest health %q (dynamodb %s); worker health %q, breaker %s; "+
		"every webhook accepted %v after the restore (%d failed attempts straddled it)",
		inside, worst.Round(time.Millisecond), ih.Status, ih.Components["dynamodb"].Status, wh.Status, wh.Breaker.State,
		accepted.Round(100*time.Millisecond), late)

	recovery := max(resumed, accepted)
	if recovery >= 30*time.Second {
		t.Errorf("recovery took %v after the restore (workers completing again after %v, every webhook accepted after %v), over the seed's 30 s",
			recovery.Round(100*time.Millisecond), resumed.Round(100*time.Millisecond), accepted.Round(100*time.Millisecond))
	}
	s.AwaitSettled(keys, 2*time.Minute)
	t.Logf("recovered %v after the restore (workers completing again after %v); all %d events done %v after it",
		recovery.Round(100*time.Millisecond), resumed.Round(100*time.Millisecond), len(keys), time.Since(restoredAt).Round(100*time.Millisecond))
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
	// A breaker closes on its next probe, which backs off: await health.
	harness.Eventually(t, 30*time.Second, "every process healthy after the outage", func(ctx context.Context) error {
		for _, p := range procs {
			h, err := p.Health(ctx)
			if err != nil {
				return err
			}
			if h.Status != "healthy" {
				return fmt.Errorf("%s is %s (breaker %q)", p.Name, h.Status, h.Breaker.State)
			}
		}
		return nil
	})
}
