package scenarios

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// EnvSeed fixes the seed of every generator and of the chaos schedule.
const EnvSeed = "WAHOOK_E2E_SEED"

// form picks the CI form (-short) or the long form of a scenario's size.
func form[T any](short, long T) T {
	if testing.Short() {
		return short
	}
	return long
}

// seed is WAHOOK_E2E_SEED, else a value derived from the test's name (stable
// across runs, different across tests).
func seed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv(EnvSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvSeed, v, err)
		}
		return n
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return h.Sum64()
}

// ingestSummary is the body of ingest's answer to POST /webhook.
type ingestSummary struct {
	Received   int `json:"received"`
	Queued     int `json:"queued"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Failed     int `json:"failed"`
}

func summaryOf(t *testing.T, r harness.Response) ingestSummary {
	t.Helper()
	var s ingestSummary
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil {
		t.Fatalf("answer %v: body %q: %v", r, r.Body, err)
	}
	return s
}

func keysOf(ps []harness.Payload) []string {
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Keys()...)
	}
	return keys
}

func bodiesOf(ps []harness.Payload) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = p.JSON()
	}
	return out
}

// workerDone sums wahook_worker_events_total{result="done"} over the running
// workers: completions as the workers counted them.
func workerDone(t *testing.T, s *harness.Stack) int {
	t.Helper()
	n, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_events_total", "result", "done")
	if err != nil {
		t.Fatalf("worker metrics: %v", err)
	}
	return int(n)
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

// checkWorkerTally compares what the running workers counted with the
// ledger, which is the truth: a worker counts an event done only when the
// reply to its Complete arrived, so a reply lost on a slow backend (the write
// landed) leaves its tally short of the ledger — allowed and logged; a tally
// above the ledger counts completions that did not happen. The same holds for
// the processed_count of every worker's health report, less the duplicate
// deliveries they skipped. Only meaningful when no worker was stopped during
// the scenario (a stopped worker takes its counts with it).
func checkWorkerTally(t *testing.T, s *harness.Stack, tally harness.Tally) {
	t.Helper()
	done := workerDone(t, s)
	switch {
	case done > tally.Done:
		t.Errorf("workers counted %d events done, the ledger holds %d", done, tally.Done)
	case done < tally.Done:
		t.Logf("workers counted %d events done, the ledger holds %d: %d completions whose reply the workers did not see",
			done, tally.Done, tally.Done-done)
	}
	var processed int64
	for _, w := range s.Processes(harness.RoleWorker) {
		h, err := w.Health(t.Context())
		if err != nil {
			t.Fatalf("worker health: %v", err)
		}
		processed += h.Processed()
	}
	dups, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_duplicates_total")
	if err != nil {
		t.Fatalf("worker metrics: %v", err)
	}
	if got := processed - int64(dups); got > int64(tally.Done) {
		t.Errorf("workers' health: processed_count %d - %d duplicate deliveries = %d, above the %d events done in the ledger",
			processed, int64(dups), got, tally.Done)
	}
}

// spread is a Meta-style delivery run in the background: each body retried
// until a 200, first attempts spread over the first half of a window.
type spread struct {
	wg         sync.WaitGroup
	mu         sync.Mutex
	deliveries []harness.Delivery
	errs       []error
	cancel     context.CancelFunc
}

// deliverSpread starts delivering bodies through c, giving up two minutes
// after window.
func deliverSpread(ctx context.Context, c *harness.Client, bodies [][]byte, window time.Duration) *spread {
	sp := &spread{}
	ctx, sp.cancel = context.WithTimeout(ctx, window+2*time.Minute)
	for i, b := range bodies {
		sp.wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * window / time.Duration(2*len(bodies))):
			case <-ctx.Done():
			}
			d, err := c.Deliver(ctx, b)
			sp.mu.Lock()
			defer sp.mu.Unlock()
			sp.deliveries = append(sp.deliveries, d)
			if err != nil {
				sp.errs = append(sp.errs, err)
			}
		})
	}
	return sp
}

// wait returns every delivery once all are accepted, failing the test for
// any that never was.
func (sp *spread) wait(t *testing.T) []harness.Delivery {
	t.Helper()
	sp.wg.Wait()
	sp.cancel()
	if len(sp.errs) > 0 {
		t.Fatalf("%d webhooks never accepted: %v", len(sp.errs), sp.errs[0])
	}
	return sp.deliveries
}

// deliverKeys delivers n new messages through ingest (webhooks of 2, 4 at a
// time, each retried like Meta) and returns their keys.
func deliverKeys(t *testing.T, s *harness.Stack, g *harness.Gen, n int) []string {
	t.Helper()
	payloads := g.Batches(g.Messages(n), 2)
	ctx, cancel := contextWithTimeout(t, 2*time.Minute)
	defer cancel()
	if _, err := s.Client().DeliverAll(ctx, bodiesOf(payloads), 4); err != nil {
		t.Fatal(err)
	}
	return keysOf(payloads)
}
