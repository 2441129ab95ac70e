package scenarios

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/ledger"
)

// Issue 7, case 5: interruptions do not exhaust attempts. Only handler
// errors spend WAHOOK_MAX_ATTEMPTS; claims that end without a result (a
// shutdown, a crash, a lapsed lease) have their own, larger bound.
//
//   - "sigterm": the worker running an event's slow handler is stopped with
//     SIGTERM six times (a new one started each time), with
//     WAHOOK_MAX_ATTEMPTS 3: the event still ends done, not failed.
//   - "slow extends": every lease write slowed past the call's bound, with
//     WAHOOK_MAX_ATTEMPTS 1: no Extend is confirmed, so once the lease ran
//     out the processor stops its run (another claim may hold the event
//     now), the message reappears and the next claim takes the lapsed lease
//     over — again and again while the backend is slow. Once it is not, the
//     event ends done: no lapsed claim spent an attempt.
//   - "crash loop": every process that runs the event is killed (kill -9)
//     mid-handler, with WAHOOK_MAX_INTERRUPTIONS 2: after three such claims
//     the fourth dead-letters it without running it, and the dead letter and
//     the ledger say why.
func TestInterruptionsDoNotExhaustAttempts(t *testing.T) {
	t.Parallel()
	g := harness.NewGen(seed(t))
	t.Run("sigterm", func(t *testing.T) {
		const stops = 6
		s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second, MaxAttempts: 3})
		s.StartIngest(nil)
		slow := harness.WorkerOptions{Processors: 2, AuditDelay: time.Minute, ShutdownTimeout: time.Second}
		keys := deliverKeys(t, s, g, form(2, 4))
		fw := harness.FaultBegins("6 SIGTERMs of the worker running a slow handler (WAHOOK_MAX_ATTEMPTS 3)")
		w := s.StartWorker(slow)
		for i := range stops {
			holdAll(t, s, w, keys)
			next := slow
			if i == stops-1 {
				next = harness.WorkerOptions{Processors: 2}
			}
			// The next worker is up before this one stops: it receives the
			// events as soon as they are given back.
			n := s.StartWorker(next)
			if _, err := w.Terminate(15 * time.Second); err != nil {
				t.Fatal(err)
			}
			w = n
		}
		fw.Ends()
		settled := s.AwaitSettled(keys, time.Minute)
		s.Report(fw, keys)
		items, err := s.Ledger(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if it := items[k]; it.Attempt != stops+1 {
				t.Errorf("%s: %s at attempt %d, want done at attempt %d (each SIGTERM a give-back)", k, it.State, it.Attempt, stops+1)
			}
		}
		s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
		t.Logf("%d SIGTERMs in %v; done %v after the last", stops, fw.End.Sub(fw.Start).Round(100*time.Millisecond), settled.Round(100*time.Millisecond))
	})
	t.Run("slow extends", func(t *testing.T) {
		// The harness bounds a backend call at 3 s (WAHOOK_BACKEND_TIMEOUT):
		// an Extend held 4 s never confirms, and the worker's three tries
		// give up about 10 s into a 20 s handler, long after the 2 s lease
		// ran out.
		s := harness.NewStack(t, harness.StackOptions{Visibility: 2 * time.Second, MaxAttempts: 1})
		s.StartIngest(nil)
		keys := deliverKeys(t, s, g, form(2, 4))
		fw := harness.FaultBegins("every Extend held 4 s, past the 3 s call bound and the 2 s lease (WAHOOK_MAX_ATTEMPTS 1)")
		inj := s.Inject(harness.RoleWorker, harness.DynamoDB, harness.Delay(4*time.Second).Matching(ledgerCall(`"SET #lease_until = :until"`)))
		slow := harness.WorkerOptions{Processors: 2, AuditDelay: 20 * time.Second}
		s.StartWorker(slow)
		s.StartWorker(slow)
		harness.Eventually(t, 2*time.Minute, "every event's lapsed lease taken over by a later claim", func(ctx context.Context) error {
			items, err := s.Ledger(ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				switch it := items[k]; {
				case it.State == ledger.StateDone || it.State == ledger.StateFailed:
					t.Fatalf("%s ended %s at attempt %d (%q) while every Extend was slow: a lease that lapsed was not taken over, or the takeover spent an attempt",
						k, it.State, it.Attempt, it.Error)
				case it.Attempt < 2:
					return fmt.Errorf("%s at attempt %d", k, it.Attempt)
				}
			}
			return nil
		})
		s.ClearInjections()
		fw.Ends()
		settled := s.AwaitSettled(keys, 2*time.Minute)
		s.Report(fw, keys)
		if inj.Hits() == 0 {
			t.Fatal("no Extend was slowed: the fault did not happen as planned")
		}
		items := mustLedger(t, s)
		for _, k := range keys {
			if it := items[k]; it.State != ledger.StateDone || it.Attempt < 2 {
				t.Errorf("%s: %s at attempt %d (%q), want done after at least one lapsed lease", k, it.State, it.Attempt, it.Error)
			}
		}
		s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
		t.Logf("%d Extends slowed; every event taken over after a lapse, then done %v after the backend recovered", inj.Hits(), settled.Round(100*time.Millisecond))
	})
	t.Run("crash loop", func(t *testing.T) {
		const limit = 2
		s := harness.NewStack(t, harness.StackOptions{Visibility: 2 * time.Second,
			Env: map[string]string{"WAHOOK_MAX_INTERRUPTIONS": fmt.Sprint(limit)}})
		s.StartIngest(nil)
		slow := harness.WorkerOptions{Processors: 2, AuditDelay: time.Minute}
		keys := deliverKeys(t, s, g, 1)
		fw := harness.FaultBegins("a crash loop: kill -9 of every worker running the event (WAHOOK_MAX_INTERRUPTIONS 2)")
		w := s.StartWorker(slow)
		for range limit + 1 {
			holdAll(t, s, w, keys)
			n := s.StartWorker(slow)
			w.Kill()
			w = n
		}
		fw.Ends()
		harness.Eventually(t, time.Minute, "the crash-looping event failed", func(ctx context.Context) error {
			items, err := s.Ledger(ctx)
			if err != nil {
				return err
			}
			if it := items[keys[0]]; it.State != ledger.StateFailed {
				return fmt.Errorf("%s at attempt %d", it.State, it.Attempt)
			}
			return nil
		})
		it := mustLedger(t, s)[keys[0]]
		a := mustAudit(t, s)[keys[0]]
		if it.Attempt != limit+2 || len(a.Runs) != limit+1 || !strings.Contains(it.Error, "interrupted") {
			t.Errorf("failed at attempt %d after %d handler runs (%q), want at attempt %d after %d runs, for interruptions",
				it.Attempt, len(a.Runs), it.Error, limit+2, limit+1)
		}
		var dl []deadletter.Info
		harness.Eventually(t, 30*time.Second, "its dead letter", func(ctx context.Context) error {
			var err error
			if dl, err = s.DeadLetters(ctx); err != nil {
				return err
			}
			if len(dl) == 0 {
				return fmt.Errorf("DLQ empty")
			}
			return nil
		})
		if len(dl) != 1 || dl[0].Key != keys[0] || dl[0].Reason != deadletter.ReasonFailed || dl[0].Attempt != limit+2 ||
			!strings.Contains(dl[0].Error, fmt.Sprintf("interrupted %d times without a result", limit+1)) {
			t.Errorf("dead letters %+v, want one for %s: reason %q at attempt %d, error naming %d interruptions",
				dl, keys[0], deadletter.ReasonFailed, limit+2, limit+1)
		}
		s.Report(fw, keys)
		t.Logf("after %d kills mid-handler: %s at attempt %d, dead letter %q: %s", limit+1, it.State, it.Attempt, dl[0].Reason, dl[0].Error)
	})
}

// holdAll waits until w's processors hold every key (processing, their
// lease); a key that ended meanwhile fails the test at once.
func holdAll(t *testing.T, s *harness.Stack, w *harness.Process, keys []string) {
	t.Helper()
	ids, err := w.ProcessorIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "every event held by "+w.Name, func(ctx context.Context) error {
		items, err := s.Ledger(ctx)
		if err != nil {
			return err
		}
		held := 0
		for _, k := range keys {
			switch it := items[k]; {
			case it.State == ledger.StateDone || it.State == ledger.StateFailed:
				t.Fatalf("%s ended %s at attempt %d (%q) while its runs were being interrupted", k, it.State, it.Attempt, it.Error)
			case it.State == ledger.StateProcessing && ids[it.Owner]:
				held++
			}
		}
		if held != len(keys) {
			return fmt.Errorf("%d of %d held", held, len(keys))
		}
		return nil
	})
}

func mustLedger(t *testing.T, s *harness.Stack) map[string]harness.LedgerItem {
	t.Helper()
	items, err := s.Ledger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func mustAudit(t *testing.T, s *harness.Stack) map[string]harness.AuditItem {
	t.Helper()
	a, err := s.Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return a
}
