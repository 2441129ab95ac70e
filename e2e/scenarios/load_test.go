package scenarios

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// SeedCeiling is the seed's webhook response target: under 5 seconds.
const SeedCeiling = 5 * time.Second

// Scenario 4: the seed's `ab -n 100 -c 10`, then a sustained fixed-rate run
// → no errors, every answer under the seed's 5 s; latency percentiles are
// printed, not asserted.
func TestLoad(t *testing.T) {
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	c := s.Client()
	g := harness.NewGen(seed(t))
	var keys []string

	// ab -n 100 -c 10 -p test_payload.json: the seed's own payload shape, one
	// message each (with the RANDOM_ID_HERE the guide asks for filled in).
	t.Run("ab", func(t *testing.T) {
		bodies := make([][]byte, 100)
		for i := range bodies {
			id := fmt.Sprintf("load_%s_%03d", g.WAMID()[6:18], i)
			bodies[i] = harness.SeedPayload(id, "1234567890", "Load test message", "1642248600")
			keys = append(keys, "msg#"+id)
		}
		rep := fire(t, c, bodies, 10, 0)
		t.Logf("ab -n 100 -c 10: %s", rep)
	})

	// Sustained: a fixed rate for a fixed time (open loop: a slow answer does
	// not slow the sender), one realistic message per webhook.
	rate, dur := 20, form(30*time.Second, 60*time.Second)
	t.Run(fmt.Sprintf("sustained_%drps_%v", rate, dur), func(t *testing.T) {
		n := rate * int(dur/time.Second)
		msgs := g.Messages(n)
		bodies := make([][]byte, n)
		for i, m := range msgs {
			bodies[i] = g.Payload([]harness.Message{m}, nil).JSON()
			keys = append(keys, m.Key())
		}
		rep := fire(t, c, bodies, 200, time.Second/time.Duration(rate))
		t.Logf("sustained %d req/s for %v: %s", rate, dur, rep)
	})

	settled := s.AwaitSettled(keys, 2*time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})
	checkWorkerTally(t, s, tally)
	t.Logf("queue drained %v after the last webhook", settled.Round(time.Millisecond))
}

type loadReport struct {
	sent    int
	errors  int
	took    time.Duration
	latency harness.Summary
}

func (r loadReport) String() string {
	return fmt.Sprintf("%d requests, %d errors, %.1f req/s; latency %s", r.sent, r.errors,
		float64(r.sent)/r.took.Seconds(), r.latency)
}

// fire posts every body once — at most conc in flight, one every interval
// (0: as fast as conc allows) — and fails the test for any answer but a 200
// and any latency over the seed's ceiling.
func fire(t *testing.T, c *harness.Client, bodies [][]byte, conc int, interval time.Duration) loadReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(len(bodies))*max(interval, 10*time.Millisecond)+time.Minute)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var tick *time.Ticker
	if interval > 0 {
		tick = time.NewTicker(interval)
		defer tick.Stop()
	}
	began := time.Now()
	var stopped error
send:
	for _, b := range bodies {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				stopped = ctx.Err()
				break send
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			stopped = ctx.Err()
			break send
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r := c.Post(ctx, b)
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, r.Latency)
			if !r.OK() {
				failures = append(failures, r.String())
			}
		})
	}
	wg.Wait()
	if stopped != nil {
		t.Fatalf("load stopped before every request was sent: %v", stopped)
	}
	rep := loadReport{sent: len(bodies), errors: len(failures), took: time.Since(began), latency: harness.Summarize(latencies)}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed, e.g. %v", len(failures), len(bodies), failures[:min(5, len(failures))])
	}
	if rep.latency.Max >= SeedCeiling {
		t.Errorf("slowest answer took %v, over the seed's %v", rep.latency.Max, SeedCeiling)
	}
	return rep
}
