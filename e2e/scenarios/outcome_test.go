package scenarios

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// perKey is a matcher's memory, shared by every process's injector: how
// often it let each event key's call through to the fault.
type perKey struct {
	mu sync.Mutex
	n  map[string]int
}

func newPerKey() *perKey { return &perKey{n: map[string]int{}} }

// take counts one for key and reports whether it is within limit.
func (p *perKey) take(key string, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key] >= limit {
		return false
	}
	p.n[key]++
	return true
}

func (p *perKey) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[key] > 0
}

// itemKey is the "pk" of a DynamoDB call's Key (UpdateItem, GetItem).
func itemKey(body []byte) string {
	var req struct {
		Key struct {
			PK struct{ S string } `json:"pk"`
		}
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	return req.Key.PK.S
}

// Issue 7, case 8: unknown is not "lost". Each event's first Complete lands
// but its reply is lost (as is its first heartbeat's Extend); the SDK retries
// the Complete, which now fails its condition (the item is done), and the
// read that should explain the refusal fails too: the first five GetItem
// calls for that key — every attempt of the ledger's read — answer HTTP 500.
// The ledger must report an unknown outcome, retried, not "lease lost": the
// next try's read finds the event done by this claim. Required: no lease
// reported lost (metric and logs), each Complete retried after its unknown
// outcome, every event done exactly once with its handler run once.
func TestOutcomeUnknownNotLeaseLost(t *testing.T) {
	t.Parallel()
	n := form(8, 60)
	// Eight failed GetItem calls per key outlast every attempt the SDK makes
	// for one read (3 or 4, seen) twice over: an Extend whose reply was lost
	// reads to learn whether it landed and, should that read come after the
	// key's Complete was sent (a busy machine), spends up to four of them;
	// the Complete's own explaining read still fails. Should the SDK ever
	// make more attempts, no Complete is retried and the check below says so.
	const readsFailed = 8
	s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
	s.StartIngest(nil)
	wo := harness.WorkerOptions{Processors: 4, AuditDelay: 1500 * time.Millisecond}
	s.StartWorker(wo)
	s.StartWorker(wo)

	completed, extended, unexplained := newPerKey(), newPerKey(), newPerKey()
	ledgerTable := harness.Table(s.LedgerTable)
	isComplete, isExtend := ledgerCall("#state = :done"), ledgerCall(`"SET #lease_until = :until"`)
	fw := harness.FaultBegins("Complete's reply lost and its explaining read failed (HTTP 500 ×8), Extend's reply lost")
	completeLost := s.Inject(harness.RoleWorker, harness.DynamoDB, harness.LoseReply().On("UpdateItem").
		Matching(func(op string, body []byte) bool {
			return ledgerTable(op, body) && isComplete(op, body) && completed.take(itemKey(body), 1)
		}))
	extendLost := s.Inject(harness.RoleWorker, harness.DynamoDB, harness.LoseReply().On("UpdateItem").
		Matching(func(op string, body []byte) bool {
			return ledgerTable(op, body) && isExtend(op, body) && extended.take(itemKey(body), 1)
		}))
	readFailed := s.Inject(harness.RoleWorker, harness.DynamoDB, harness.Error("InternalServerError", 500).On("GetItem").
		Matching(func(op string, body []byte) bool {
			k := itemKey(body)
			return ledgerTable(op, body) && completed.has(k) && unexplained.take(k, readsFailed)
		}))

	g := harness.NewGen(seed(t))
	keys := deliverKeys(t, s, g, n)
	s.AwaitSettled(keys, time.Minute)
	s.ClearInjections()
	s.Report(fw, keys)
	t.Logf("%d Complete replies lost, %d Extend replies lost, %d explaining reads failed", completeLost.Hits(), extendLost.Hits(), readFailed.Hits())
	if completeLost.Hits() != int64(len(keys)) || readFailed.Hits() < int64(readsFailed*len(keys)) {
		t.Fatalf("the fault did not happen as planned: %d Complete replies lost and %d reads failed for %d events, want %d and %d",
			completeLost.Hits(), readFailed.Hits(), len(keys), len(keys), readsFailed*len(keys))
	}

	ctx := t.Context()
	lost, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_leases_lost_total")
	if err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Errorf("workers report %v leases lost; none was lost, a read failed", lost)
	}
	if lines := logLines(t, s.Processes(harness.RoleWorker), "lease lost"); len(lines) > 0 {
		t.Errorf("%d worker log lines say a lease was lost, e.g. %s", len(lines), lines[0])
	}
	retried, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_backend_errors_total", "op", "complete")
	if err != nil {
		t.Fatal(err)
	}
	if retried < float64(len(keys)) {
		t.Errorf("%v Complete calls retried after an unknown outcome, want at least one per event (%d): an unknown outcome is retried (fewer: the outcome was taken for known, or the SDK outlasted the failed reads)", retried, len(keys))
	}
	// A Complete whose outcome stays unknown past the worker's bounded retry
	// (seen in the long form: the failed reads spend the SDK's retry quota,
	// later reads fail at once) is settled by the event's next delivery,
	// which finds it done: its worker's tally stays short of the ledger.
	tally := s.CheckInvariants(harness.Expect{Keys: keys})
	checkWorkerTally(t, s, tally)
}

// logLines returns the lines of the processes' logs that contain text.
func logLines(t *testing.T, procs []*harness.Process, text string) []string {
	t.Helper()
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatalf("%s log: %v", p.Name, err)
		}
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, text) {
				out = append(out, p.Name+": "+strings.TrimSpace(line))
			}
		}
	}
	return out
}
