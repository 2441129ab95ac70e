package scenarios

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/ledger"
)

// Issue 7, case 6: the result write is never cut short. Once a handler has
// run, the write that records its result is worth every try its bound
// allows, and the message stays hidden until that
// write and the delete are answered: otherwise the event is handled again.
//
//   - "slow complete": every Complete takes 5 s, longer than the 4 s
//     visibility timeout (not shorter: heartbeats every 1.3 s leave a
//     loaded machine's stalls some room). Heartbeats go on through the result write and the
//     delete, so no message is handed out twice and no handler runs twice.
//   - "breaker opens": each event's first Complete answers 500 and opens the
//     ledger breaker (threshold 1); the write is retried anyway, so each
//     event is done under its first claim, by its only run.
func TestResultWriteNotCutShort(t *testing.T) {
	t.Parallel()
	g := harness.NewGen(seed(t))
	n := form(4, 20)
	complete := ledgerCall("#state = :done")
	env := map[string]string{
		// One HTTP call per try, so that the injected failures are the
		// worker's own retries; a Complete may take its 5 s.
		"AWS_MAX_ATTEMPTS": "1", "WAHOOK_BACKEND_TIMEOUT": "8s", "WAHOOK_BREAKER_THRESHOLD": "1",
	}
	for _, tc := range []struct {
		name, what string
		rules      func() []harness.Rule
		// resent: copies handed out again are allowed (the breaker leaves
		// the messages of a receive it opened during).
		resent bool
	}{
		{"slow complete", "every Complete 5 s, visibility 4 s", func() []harness.Rule {
			return []harness.Rule{harness.Delay(5 * time.Second).Matching(complete)}
		}, false},
		{"breaker opens", "each event's first Complete 500, breaker threshold 1", func() []harness.Rule {
			first := nthCallPerKey(complete, 1)
			return []harness.Rule{harness.Error("InternalServerError", 500).Matching(first)}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := harness.NewStack(t, harness.StackOptions{Visibility: 4 * time.Second, Env: env})
			s.StartIngest(nil)
			s.StartWorker(harness.WorkerOptions{Processors: 2})
			s.StartWorker(harness.WorkerOptions{Processors: 2})
			fw := harness.FaultBegins("result write: " + tc.what)
			var injected []*harness.Injection
			for _, r := range tc.rules() {
				injected = append(injected, s.Inject(harness.RoleWorker, harness.DynamoDB, r))
			}
			keys := deliverKeys(t, s, g, n)
			s.AwaitSettled(keys, 2*time.Minute)
			s.ClearInjections()
			fw.Ends()
			s.Report(fw, keys)
			for _, inj := range injected {
				if inj.Hits() < int64(n) {
					t.Fatalf("the fault hit %d Completes, want one per event (%d): it did not happen as planned", inj.Hits(), n)
				}
			}
			items, audit := mustLedger(t, s), mustAudit(t, s)
			for _, k := range keys {
				if it, a := items[k], audit[k]; it.Attempt != 1 || len(a.Runs) != 1 {
					t.Errorf("%s: done at attempt %d after %d handler runs (%s), want its first claim's only run",
						k, it.Attempt, len(a.Runs), runsOf(a))
				}
			}
			if got := s.Received(); !tc.resent && got != int64(len(keys)) {
				t.Errorf("SQS handed out %d messages for %d events: a message reappeared while its result was written", got, len(keys))
			}
			s.CheckInvariants(harness.Expect{Keys: keys})
			t.Logf("%s: %d messages handed out for %d events", tc.name, s.Received(), len(keys))
		})
	}
}

// runsOf lists an audit item's runs as processor#attempt.
func runsOf(a harness.AuditItem) string {
	parts := make([]string, len(a.Runs))
	for i, r := range a.Runs {
		parts[i] = fmt.Sprintf("%s#%d", r.Processor, r.Attempt)
	}
	return strings.Join(parts, ", ")
}

// nthCallPerKey matches the nth call per ledger key among those match
// accepts (a rule's matcher runs once per call, under its injector's lock;
// the count is shared by every injector the rule is added to).
func nthCallPerKey(match func(op string, body []byte) bool, nth int) func(op string, body []byte) bool {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(op string, body []byte) bool {
		if !match(op, body) {
			return false
		}
		var req struct {
			Key map[string]map[string]string `json:"Key"`
		}
		if json.Unmarshal(body, &req) != nil {
			return false
		}
		k := req.Key[ledger.AttrPK]["S"]
		mu.Lock()
		defer mu.Unlock()
		seen[k]++
		return seen[k] == nth
	}
}
