package harness

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahook/wahook/shared/ledger"
)

// Expect is what a scenario accepted and what it allows.
type Expect struct {
	// Keys are every event key an ingest answered 200 for.
	Keys []string
	// Reinvocable says which keys the scenario disturbed (a kill, a cut, an
	// outage, a shutdown): their handlers may run more than once, each time
	// under a new claim with a higher fencing token. Any other key is handled
	// exactly once — unless the backends show that its earlier claim's lease
	// ran out before the next claim (a heartbeat that did not land in time on
	// a slow backend): the product guarantees fencing, not punctual backends.
	// nil: no key disturbed.
	Reinvocable func(key string) bool
	// DLQ is the number of messages expected in the dead-letter queue.
	DLQ int
}

// AnyKey lets every key be re-invoked.
func AnyKey(string) bool { return true }

// KeysIn lets the listed keys be re-invoked.
func KeysIn(keys ...string) func(string) bool {
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return func(k string) bool { return set[k] }
}

// Tally is what the backends hold once a scenario settled: the numbers a
// scenario reports.
type Tally struct {
	Keys        int // distinct keys expected
	Done        int // ledger items done
	Invocations int // handler invocations, summed over keys
	Reinvoked   int // keys invoked more than once
	MaxAttempt  int // highest fencing token seen
	Ambiguous   int // keys whose invocation counter counts a retried write (an ambiguous reply)
	LeaseLost   int // undisturbed keys re-invoked after their earlier claim's lease ran out
	Rows        int // messages table rows
	DLQ         int
	// SpentUnseen counts dead-letter copies of done events that SQS redrove
	// after fewer receives reached the stack's processes than the queue's
	// max receive count: receives SQS counted but answered to no process.
	SpentUnseen int
}

func (t Tally) String() string {
	s := fmt.Sprintf("%d keys: %d done, %d handler invocations (%d keys re-invoked, max attempt %d), %d message rows, DLQ %d",
		t.Keys, t.Done, t.Invocations, t.Reinvoked, t.MaxAttempt, t.Rows, t.DLQ)
	if t.Ambiguous > 0 {
		s += fmt.Sprintf("; %d audit counters above their runs (retried writes: ambiguous replies)", t.Ambiguous)
	}
	if t.LeaseLost > 0 {
		s += fmt.Sprintf("; %d undisturbed keys re-invoked after a lease ran out", t.LeaseLost)
	}
	if t.SpentUnseen > 0 {
		s += fmt.Sprintf("; %d dead letters of done events whose receives SQS spent where no process saw them", t.SpentUnseen)
	}
	return s
}

// WamidOf returns the wamid of a ledger key (msg#<wamid>, status#<wamid>#<status>).
func WamidOf(key string) string {
	switch {
	case strings.HasPrefix(key, "msg#"):
		return strings.TrimPrefix(key, "msg#")
	case strings.HasPrefix(key, "status#"):
		rest := strings.TrimPrefix(key, "status#")
		if i := strings.LastIndexByte(rest, '#'); i >= 0 {
			return rest[:i]
		}
	}
	return ""
}

// AwaitSettled waits until every key is done in the ledger and the queue is
// empty, and returns how long that took. It fails the test with what is still
// missing when timeout passes first.
func (s *Stack) AwaitSettled(keys []string, timeout time.Duration) time.Duration {
	s.t.Helper()
	want := dedup(keys)
	return Eventually(s.t, timeout, "all events done and queue drained", func(ctx context.Context) error {
		items, err := s.Ledger(ctx)
		if err != nil {
			return err
		}
		byState := map[ledger.State]int{}
		missing := 0
		var example string
		for _, k := range want {
			it, ok := items[k]
			switch {
			case !ok:
				missing++
				example = k
			case it.State != ledger.StateDone:
				byState[it.State]++
				example = k
			}
		}
		q, dlq, err := s.Depth(ctx)
		if err != nil {
			return err
		}
		if missing > 0 || len(byState) > 0 {
			return fmt.Errorf("%d/%d done; %d without a ledger item, not done: %v (e.g. %s); queue %s; DLQ %s",
				len(want)-missing-sum(byState), len(want), missing, byState, example, q, dlq)
		}
		if q.Total() > 0 {
			return fmt.Errorf("all %d keys done but the queue still holds %s", len(want), q)
		}
		return nil
	})
}

func sum[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func dedup(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// CheckInvariants reads the ledger, the audit table, the messages table and
// both queues, and reports every violation of the exactly-once contract:
//
//   - the ledger holds exactly the accepted keys, every one `done` (none left
//     received, queued, processing or failed);
//   - each key's handler ran at least once (runs, as the audit handler
//     recorded them: a write the SDK retried is one run); more than once only
//     for keys the scenario disturbed or whose earlier claim's lease ran out
//     (see Expect.Reinvocable), and then only under a ledger attempt above 1,
//     never more often than its attempt, never twice with one fencing token;
//   - the messages table has exactly one row per wamid;
//   - the queue is empty, the DLQ holds e.DLQ messages, besides copies of
//     done events that SQS redrove after fewer receives reached the stack's
//     processes than its max receive count (Tally.SpentUnseen: receives SQS
//     counted but answered to no process, which no consumer can prevent).
func (s *Stack) CheckInvariants(e Expect) Tally {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	tally, errs := s.invariants(ctx, e)
	for _, err := range errs {
		s.t.Errorf("invariant: %v", err)
	}
	s.CheckProcesses()
	s.t.Logf("settled: %s", tally)
	return tally
}

// leaseSlack is how much later than its claim a handler may record its
// start (the claim's round trip and scheduling, on a loaded machine).
const leaseSlack = 2 * time.Second

// leaseRanOut reports whether each run began when the previous run's claim
// could have lost its lease: a claim's lease lasts at least lease from the
// claim, which came before its run began, and the ledger lets the next claim
// in only once that lease is over. Runs sooner than that share a live lease.
func leaseRanOut(runs []AuditRun, lease time.Duration) bool {
	for i := 1; i < len(runs); i++ {
		if runs[i].Started.Sub(runs[i-1].Started) < lease-leaseSlack {
			return false
		}
	}
	return true
}

func runsText(runs []AuditRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		off := ""
		if i > 0 {
			off = fmt.Sprintf(" +%v", r.Started.Sub(runs[0].Started).Round(time.Millisecond))
		}
		parts[i] = fmt.Sprintf("attempt %d by %s%s", r.Attempt, r.Processor, off)
	}
	return strings.Join(parts, ", ")
}

// maxListed bounds the examples one violation lists.
const maxListed = 8

func (s *Stack) invariants(ctx context.Context, e Expect) (Tally, []error) {
	want := dedup(e.Keys)
	tally := Tally{Keys: len(want)}
	var errs []error
	items, err := s.Ledger(ctx)
	if err != nil {
		return tally, []error{err}
	}
	audit, err := s.Audit(ctx)
	if err != nil {
		return tally, []error{err}
	}
	rows, err := s.Messages(ctx)
	if err != nil {
		return tally, []error{err}
	}
	q, dlq, err := s.Depth(ctx)
	if err != nil {
		return tally, []error{err}
	}
	tally.Rows, tally.DLQ = len(rows), dlq.Total()

	wanted := make(map[string]bool, len(want))
	wamids := map[string]bool{}
	for _, k := range want {
		wanted[k] = true
		wamids[WamidOf(k)] = true
	}

	var missing, notDone, extra, noAudit, notOnce, unfenced, tokenReuse, staleDone []string
	for _, k := range want {
		it, ok := items[k]
		switch {
		case !ok:
			missing = append(missing, k)
			continue
		case it.State != ledger.StateDone:
			notDone = append(notDone, fmt.Sprintf("%s=%s(attempt %d, owner %q, err %q)", k, it.State, it.Attempt, it.Owner, it.Error))
		default:
			tally.Done++
			// The claim that completed it is the latest one, and it ran the
			// handler: a stale claim's Complete must have been refused.
			i := strings.LastIndexByte(it.DoneBy, '#')
			if i < 0 || it.DoneBy[i+1:] != strconv.Itoa(it.Attempt) {
				staleDone = append(staleDone, fmt.Sprintf("%s: done by %q, ledger attempt %d", k, it.DoneBy, it.Attempt))
			} else if a, ok := audit[k]; ok && a.Attempts[it.Attempt] != it.DoneBy[:i] {
				staleDone = append(staleDone, fmt.Sprintf("%s: done by %q, but attempt %d ran on %q", k, it.DoneBy, it.Attempt, a.Attempts[it.Attempt]))
			}
		}
		tally.MaxAttempt = max(tally.MaxAttempt, it.Attempt)
		a, ok := audit[k]
		if !ok || len(a.Runs) < 1 {
			noAudit = append(noAudit, k)
			continue
		}
		runs := len(a.Runs)
		tally.Invocations += runs
		if a.Invocations > runs {
			// The counter's ADD was retried after a reply that never came.
			tally.Ambiguous++
		}
		perAttempt := map[int]int{}
		for _, r := range a.Runs {
			perAttempt[r.Attempt]++
			if r.Attempt < 1 || r.Attempt > it.Attempt {
				tokenReuse = append(tokenReuse, fmt.Sprintf("%s: invoked with attempt %d, ledger attempt %d", k, r.Attempt, it.Attempt))
			}
		}
		for n, c := range perAttempt {
			if c > 1 {
				tokenReuse = append(tokenReuse, fmt.Sprintf("%s: %d runs under attempt %d", k, c, n))
			}
		}
		if runs > 1 {
			tally.Reinvoked++
			if e.Reinvocable == nil || !e.Reinvocable(k) {
				if leaseRanOut(a.Runs, s.Visibility) {
					tally.LeaseLost++
				} else {
					notOnce = append(notOnce, fmt.Sprintf("%s: runs %s, ledger attempt %d", k, runsText(a.Runs), it.Attempt))
				}
			}
			if it.Attempt <= 1 || runs > it.Attempt {
				unfenced = append(unfenced, fmt.Sprintf("%s: %d invocations but ledger attempt %d", k, runs, it.Attempt))
			}
		}
	}
	for k, it := range items {
		if !wanted[k] {
			extra = append(extra, fmt.Sprintf("%s=%s", k, it.State))
		}
	}
	var extraAudit []string
	for k := range audit {
		if !wanted[k] {
			extraAudit = append(extraAudit, k)
		}
	}
	var noRow, extraRow []string
	for w := range wamids {
		if _, ok := rows[w]; !ok {
			noRow = append(noRow, w)
		}
	}
	for w := range rows {
		if !wamids[w] {
			extraRow = append(extraRow, w)
		}
	}

	report := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		errs = append(errs, fmt.Errorf("%s: %d, e.g. %s", what, len(list), firstListed(list)))
	}
	report("accepted keys without a ledger item (LOST)", missing)
	report("accepted keys not done", notDone)
	report("ledger items for keys never accepted", extra)
	report("done keys whose handler never ran", noAudit)
	report("keys handled more than once that the scenario did not disturb, before the earlier claim's lease could run out (DOUBLE PROCESSING)", notOnce)
	report("re-invocations without a new claim (DOUBLE PROCESSING)", unfenced)
	report("invocations sharing or exceeding a fencing token", tokenReuse)
	report("keys completed by a claim that was not the latest (UNFENCED COMPLETE)", staleDone)
	report("audit items for keys never accepted", extraAudit)
	report("wamids without a messages row", noRow)
	report("messages rows for unknown wamids", extraRow)
	if q.Total() != 0 {
		errs = append(errs, fmt.Errorf("queue not empty: %s", q))
	}
	var others []string
	if dlq.Total() > e.DLQ {
		// A copy is not wahook's doing when its event is done and fewer
		// receives reached the processes than SQS allows: SQS counted
		// receives whose answers no process got (a receive the SDK retried
		// after its first try was served, on an emulator stalled by a busy
		// machine). The others are listed with their hand-outs.
		copies, err := s.deadLetterCopies(ctx)
		if err != nil {
			return tally, append(errs, err)
		}
		for _, c := range copies {
			seen := s.HandedOut(c.id)
			if it, ok := items[c.key]; ok && it.State == ledger.StateDone && seen < int64(s.opts.MaxReceiveCount) {
				tally.SpentUnseen++
				continue
			}
			others = append(others, fmt.Sprintf("%s (message %s, handed to the processes %d times, max receive count %d)",
				c.key, c.id, seen, s.opts.MaxReceiveCount))
		}
	}
	if dlq.Total()-tally.SpentUnseen != e.DLQ {
		err := fmt.Errorf("DLQ holds %d messages (%s), want %d", dlq.Total(), dlq, e.DLQ)
		if len(others) > 0 {
			err = fmt.Errorf("%w; copies: %s", err, firstListed(others))
		}
		errs = append(errs, err)
	}
	return tally, errs
}

// firstListed sorts list and joins its first maxListed entries.
func firstListed(list []string) string {
	sort.Strings(list)
	return strings.Join(list[:min(len(list), maxListed)], "; ")
}

// ProcessedByWorkers sums processed_count over the running workers' health
// reports.
func (s *Stack) ProcessedByWorkers(ctx context.Context) (int64, error) {
	var total int64
	var errs []error
	for _, w := range s.Processes(RoleWorker) {
		h, err := w.Health(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total += h.Processed()
	}
	return total, errors.Join(errs...)
}
