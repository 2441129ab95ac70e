package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
)

// flight counts the Acquire calls in flight, and the most there were at once
// among the first and among the second half of the calls.
type flight struct {
	mu    sync.Mutex
	half  int // calls counted as the first half
	calls int
	now   int
	peak  [2]int
}

func (f *flight) enter() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now++
	h := 0
	if f.calls >= f.half {
		h = 1
	}
	f.calls++
	f.peak[h] = max(f.peak[h], f.now)
}

func (f *flight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now--
}

// boundLedger is a table without room for more: it serves one Acquire at a
// time, each for service (a single-threaded emulator, a provisioned table at
// its capacity), so that the more are in flight the longer each waits.
type boundLedger struct {
	*ledger.Store
	service time.Duration
	serve   *sync.Mutex
	in      *flight
}

func (l boundLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	l.in.enter()
	defer l.in.leave()
	if l.service > 0 {
		l.serve.Lock()
		time.Sleep(l.service) // the table's work on this write
		l.serve.Unlock()
	}
	return l.Store.Acquire(ctx, key)
}

// admitThrough runs one body of n events through a pipeline over l and
// checks that every event was queued once.
func admitThrough(t *testing.T, s *stack, l pipeline.Ledger, n int, o pipeline.Options) {
	t.Helper()
	batch, err := webhook.Parse([]byte(messages(t.Name(), n)))
	if err != nil {
		t.Fatal(err)
	}
	res := pipelineOpts(t, s, l, o).Process(t.Context(), batch, s.log)
	if res.Queued != n || !res.Complete() {
		t.Fatalf("result %+v, want %d queued", res, n)
	}
	if got := len(s.drain()); got != n {
		t.Fatalf("%d messages in the queue, want %d", got, n)
	}
}

// On a table that answers within the latency target, a large body's
// admission grows past where it starts (16) toward the most (64).
func TestAdmissionGrowsWhileTheLedgerKeepsUp(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 1000
	in := &flight{half: n / 2}
	// A target a loaded machine's emulator still meets: what is tested is the
	// growth, not the emulator's speed.
	admitThrough(t, s, boundLedger{Store: s.store, in: in}, n, pipeline.Options{Concurrency: 64, LatencyTarget: 2 * time.Second})
	t.Logf("most Acquire calls in flight at once: %d in the first half of the body, %d in the second", in.peak[0], in.peak[1])
	if most := max(in.peak[0], in.peak[1]); most <= 32 {
		t.Errorf("at most %d Acquire calls in flight at once, want more than 32 (admission starts at 16 and may grow to 64)", most)
	}
}

// On a table that queues its writes, admission backs off: the answer time
// stays near the target instead of growing with the writes in flight until
// calls time out. Here each write holds the table for 10 ms, so with the
// 40 ms target about four writes in flight are all it takes; at the start
// of 16 each would wait 160 ms.
func TestAdmissionBacksOffWhileTheLedgerQueues(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 200
	in := &flight{half: n / 2}
	l := boundLedger{Store: s.store, service: 10 * time.Millisecond, serve: &sync.Mutex{}, in: in}
	admitThrough(t, s, l, n, pipeline.Options{Concurrency: 64, LatencyTarget: 40 * time.Millisecond})
	t.Logf("most Acquire calls in flight at once: %d in the first half of the body, %d in the second", in.peak[0], in.peak[1])
	if in.peak[0] > 16 {
		t.Errorf("%d Acquire calls in flight at once in the first half, want at most the start, 16: admission grew on a queueing table", in.peak[0])
	}
	if in.peak[1] > 8 {
		t.Errorf("%d Acquire calls in flight at once in the second half of the body, want at most 8: admission did not back off while each write waited for the ones before it", in.peak[1])
	}
}

// webhooks parses count bodies of size events each, every event its own.
func webhooks(t *testing.T, count, size int) []*webhook.Batch {
	t.Helper()
	out := make([]*webhook.Batch, count)
	for i := range out {
		b, err := webhook.Parse([]byte(messages(fmt.Sprintf("%s-%d", t.Name(), i), size)))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// processAll runs the bodies through p at once and returns their results.
func processAll(t *testing.T, s *stack, p *pipeline.Pipeline, bodies []*webhook.Batch) []pipeline.Result {
	t.Helper()
	res := make([]pipeline.Result, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { res[i] = p.Process(t.Context(), b, s.log) })
	}
	wg.Wait()
	return res
}

// Concurrent webhooks share the process's admission concurrency: forty
// copies-at-once of a 14-event body are 560 writes, which limits of their own
// would all let through together (each within its 16) — on a loaded emulator,
// every one then timed out, and so did the releases that followed.
func TestConcurrentWebhooksShareTheAdmissionLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const count, size = 40, 14
	in := &flight{half: count * size / 2}
	l := boundLedger{Store: s.store, service: 2 * time.Millisecond, serve: &sync.Mutex{}, in: in}
	// A bound on the wait for a slot no busy machine reaches: what is tested
	// is the sharing, not the shedding (next test).
	p := pipelineOpts(t, s, l, pipeline.Options{Concurrency: 64, LatencyTarget: 40 * time.Millisecond, BackendTimeout: time.Minute})
	for i, r := range processAll(t, s, p, webhooks(t, count, size)) {
		if r.Queued != size || !r.Complete() {
			t.Errorf("webhook %d: %+v, want %d queued", i, r, size)
		}
	}
	if got := len(s.drain()); got != count*size {
		t.Errorf("%d messages in the queue, want %d", got, count*size)
	}
	t.Logf("most Acquire calls in flight at once: %d in the first half of the writes, %d in the second", in.peak[0], in.peak[1])
	if most := max(in.peak[0], in.peak[1]); most > 64 {
		t.Errorf("%d Acquire calls in flight at once, want at most the process's most, 64, for all the webhooks together", most)
	}
	if in.peak[1] > 32 {
		t.Errorf("%d Acquire calls in flight at once in the second half, want at most 32: admission did not back off while each write waited for the ones before it", in.peak[1])
	}
}

// A ledger that cannot take what the webhooks ask of it: each write holds
// the table for 25 ms and admission's most is 4 at once, so that twenty
// webhooks taking turns for a slot each wait about 500 ms for their next one,
// longer than a backend call may take (200ms). Events past that point are
// not written: their webhooks are answered incomplete (503) with
// nothing left `received` for them, and Meta's retries, one webhook at a
// time, queue each event once.
func TestAdmissionLeavesWhatTheLedgerCannotTakeToMetasRetry(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const count, size = 20, 5
	in := &flight{half: count * size}
	l := boundLedger{Store: s.store, service: 25 * time.Millisecond, serve: &sync.Mutex{}, in: in}
	p := pipelineOpts(t, s, l, pipeline.Options{Concurrency: 4, BackendTimeout: 200 * time.Millisecond})
	bodies := webhooks(t, count, size)
	var retry []*webhook.Batch
	queued := 0
	for i, r := range processAll(t, s, p, bodies) {
		queued += r.Queued
		if r.Queued+r.Failed != size {
			t.Errorf("webhook %d: %+v, want each of %d events queued or failed", i, r, size)
		}
		if !r.Complete() {
			retry = append(retry, bodies[i])
		}
	}
	t.Logf("all at once: %d of %d events queued, %d webhooks to retry, %d Acquire calls, at most %d in flight",
		queued, count*size, len(retry), in.calls, in.peak[0])
	if len(retry) == 0 {
		t.Fatalf("every webhook was admitted whole: the ledger kept up, nothing tested")
	}
	if in.peak[0] > 4 {
		t.Errorf("%d Acquire calls in flight at once, want at most 4", in.peak[0])
	}
	if in.calls != queued {
		t.Errorf("%d Acquire calls for %d events queued: events not admitted were written", in.calls, queued)
	}
	left := 0
	for _, b := range retry {
		for _, e := range b.Events {
			_, err := s.store.Get(t.Context(), e.Key)
			switch {
			case isNotFound(err):
				left++
			case err != nil:
				t.Fatal(err)
			}
		}
	}
	if left == 0 {
		t.Errorf("the webhooks to retry have every event in the ledger: none was left unwritten")
	}

	// Meta's retries, one webhook at a time: each attempt admits at least
	// the four events that take the free slots at once, so none needs more
	// than a few.
	for i, b := range retry {
		for attempt := 1; ; attempt++ {
			r := p.Process(t.Context(), b, s.log)
			if r.Complete() {
				break
			}
			if attempt == size {
				t.Fatalf("retried webhook %d still incomplete after %d attempts alone: %+v", i, attempt, r)
			}
		}
	}
	if got := keys(s.drain()); len(got) != count*size || len(slices.Compact(got)) != count*size {
		t.Errorf("%d messages in the queue (%d keys), want each of the %d events once", len(got), len(slices.Compact(got)), count*size)
	}
}

// markLedger holds each MarkQueued for service (the table's work on it) and
// counts the calls in flight.
type markLedger struct {
	*ledger.Store
	service time.Duration
	in      *flight
}

func (l markLedger) MarkQueued(ctx context.Context, r ledger.Receipt) (bool, error) {
	l.in.enter()
	defer l.in.leave()
	time.Sleep(l.service) // the table's work on this write
	return l.Store.MarkQueued(ctx, r)
}

// A sent batch's events are marked queued under the process's bound, as
// their writes were admitted under it: ten webhooks of 100 events send
// batches faster than a slow table marks them, and each batch marking its
// ten events at once (as ingest did) kept 79 MarkQueued calls in flight here
// — and 95 beside the Acquires in an ingest taking one 1,000-update body: a
// connection, a goroutine and its stack each, 48–57 MB resident.
func TestMarkQueuedCallsStayWithinTheProcessBound(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const count, size, most = 10, 100, 16
	in := &flight{half: count * size}
	l := markLedger{Store: s.store, service: 10 * time.Millisecond, in: in}
	p := pipelineOpts(t, s, l, pipeline.Options{Concurrency: most, BackendTimeout: time.Minute})
	for i, r := range processAll(t, s, p, webhooks(t, count, size)) {
		if r.Queued != size || !r.Complete() {
			t.Errorf("webhook %d: %+v, want %d queued", i, r, size)
		}
	}
	if got := len(s.drain()); got != count*size {
		t.Errorf("%d messages in the queue, want %d", got, count*size)
	}
	t.Logf("%d MarkQueued calls, at most %d in flight at once", in.calls, in.peak[0])
	if in.calls != count*size {
		t.Errorf("%d MarkQueued calls, want one per event, %d", in.calls, count*size)
	}
	if in.peak[0] > most {
		t.Errorf("%d MarkQueued calls in flight at once, want at most the process's bound, %d", in.peak[0], most)
	}
}
