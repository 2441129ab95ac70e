package pipeline_test

import (
	"context"
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
