package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Issue 7, case 4: a handler that ignores its context (the audit handler's
// stuck mode: each event's first attempt sleeps 5 minutes, deaf to its
// deadline). The worker abandons it 1 s past the handler timeout: its
// heartbeats stop, the lease lapses, and the event is taken over under a new
// claim and done once; wahook_worker_handler_abandoned_total counts each
// abandoned run. A SIGTERM while such handlers run still ends the process
// within WAHOOK_SHUTDOWN_TIMEOUT + 3 s.
func TestHandlerIgnoringContext(t *testing.T) {
	n := form(3, 12)
	const (
		visibility     = 3 * time.Second
		handlerTimeout = 2 * time.Second
		shutdown       = 2 * time.Second
		exitBound      = shutdown + 3*time.Second
	)
	s := harness.NewStack(t, harness.StackOptions{Visibility: visibility})
	s.StartIngest(nil)
	stuck := func(timeout time.Duration) harness.WorkerOptions {
		return harness.WorkerOptions{Processors: 2, ShutdownTimeout: shutdown, Env: map[string]string{
			"WAHOOK_AUDIT_STUCK": "5m", "WAHOOK_HANDLER_TIMEOUT": timeout.String()}}
	}
	w1 := s.StartWorker(stuck(handlerTimeout))
	ctx := t.Context()
	ids1, err := w1.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := harness.NewGen(seed(t))
	deliver := func(msgs []harness.Message) []string {
		payloads := g.Batches(msgs, 2)
		dctx, cancel := contextWithTimeout(t, time.Minute)
		defer cancel()
		if _, err := s.Client().DeliverAll(dctx, bodiesOf(payloads), 4); err != nil {
			t.Fatal(err)
		}
		return keysOf(payloads)
	}

	// At the handler timeout: abandoned, heartbeats stopped.
	fw := harness.FaultBegins("a handler ignoring its context (stuck 5 min; handler timeout 2 s, then SIGTERM)")
	began := time.Now()
	timedOut := deliver(g.Messages(n))
	harness.Eventually(t, time.Minute, "every stuck run abandoned", func(ctx context.Context) error {
		m, err := w1.Metrics(ctx)
		if err != nil {
			return err
		}
		if got := m.Get("wahook_worker_handler_abandoned_total"); got < float64(n) {
			return fmt.Errorf("%v abandoned, want %d", got, n)
		}
		return nil
	})
	abandonedAt := time.Now()
	// The stuck runs sleep on: only stopped heartbeats let their leases lapse
	// (or a new claim take the event, once they have).
	harness.Eventually(t, 4*visibility, "the abandoned runs' leases lapse", func(ctx context.Context) error {
		items, err := s.Ledger(ctx)
		if err != nil {
			return err
		}
		for _, k := range timedOut {
			it := items[k]
			if it.Attempt == 1 && (!ids1[it.Owner] || time.Now().Before(it.LeaseUntil)) {
				return fmt.Errorf("%s: %s by %s at attempt 1, lease until %s", k, it.State, it.Owner, it.LeaseUntil.Format(time.TimeOnly))
			}
		}
		return nil
	})
	t.Logf("%d stuck runs abandoned %v after delivery; leases lapsed %v later", n,
		abandonedAt.Sub(began).Round(100*time.Millisecond), time.Since(abandonedAt).Round(100*time.Millisecond))
	took, err := w1.Terminate(exitBound + 5*time.Second)
	if err != nil || took > exitBound {
		t.Errorf("%s with abandoned handlers still asleep: exit %v after SIGTERM (%v), want within %v", w1.Name, took.Round(10*time.Millisecond), err, exitBound)
	}

	// SIGTERM while handlers are stuck (their timeout far off): the grace
	// period ends, they are abandoned, the process exits.
	w2 := s.StartWorker(stuck(time.Minute))
	ids2, err := w2.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cut := deliver(g.Messages(2))
	harness.Eventually(t, time.Minute, "the new events held by "+w2.Name, func(ctx context.Context) error {
		items, err := s.Ledger(ctx)
		if err != nil {
			return err
		}
		for _, k := range cut {
			if it := items[k]; it.Attempt != 1 || !ids2[it.Owner] {
				return fmt.Errorf("%s: %s by %q at attempt %d", k, it.State, it.Owner, it.Attempt)
			}
		}
		return nil
	})
	took, err = w2.Terminate(exitBound + 10*time.Second)
	if err != nil || took > exitBound {
		t.Errorf("%s with stuck handlers: exit %v after SIGTERM (%v), want within WAHOOK_SHUTDOWN_TIMEOUT + 3s = %v", w2.Name, took.Round(10*time.Millisecond), err, exitBound)
	}
	t.Logf("SIGTERM with %d stuck handlers: %s exited in %v (bound %v)", len(cut), w2.Name, took.Round(10*time.Millisecond), exitBound)

	// Another worker takes every event over.
	fw.Ends()
	s.StartWorker(harness.WorkerOptions{Processors: 2})
	keys := append(append([]string(nil), timedOut...), cut...)
	s.AwaitSettled(keys, 2*time.Minute)
	s.Report(fw, keys)
	items, err := s.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		it, a := items[k], audit[k]
		first := 0
		for _, r := range a.Runs {
			if r.Attempt == 1 {
				first++
			}
		}
		if first != 1 || it.Attempt < 2 || len(a.Runs) != it.Attempt {
			t.Errorf("%s: runs %v, done at attempt %d by %s: want the stuck attempt 1 once, then one run per later claim", k, a.Attempts, it.Attempt, it.DoneBy)
		}
	}
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
}
