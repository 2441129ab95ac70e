package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/ledger"
)

// Scenario 5: kill -9 a worker in the middle of its handlers, another worker
// running → every message completed once; the events the dead worker held
// come back after their lease and visibility run out. Reports the recovery
// time (the seed's target: under 30 s). The other worker is started before
// the kill, as a scaled service's other tasks are running: the recovery is
// the ledger's and the queue's, not a process start (on a busy machine a
// worker started after the kill took 5–14 s to pass its start-up checks
// against the loaded emulators, a third to a half of the bound).
func TestProcessorCrash(t *testing.T) {
	t.Parallel()
	const visibility = 5 * time.Second
	const delay = 2 * time.Second
	rounds := form(1, 3)
	s := harness.NewStack(t, harness.StackOptions{Visibility: visibility})
	s.StartIngest(nil)
	g := harness.NewGen(seed(t))
	ctx := t.Context()

	var keys, orphans []string
	victim := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: delay})
	for round := 1; round <= rounds; round++ {
		successor := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: delay})
		payloads := g.Batches(g.Messages(40), 5)
		keys = append(keys, keysOf(payloads)...)
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := s.Client().DeliverAll(dctx, bodiesOf(payloads), 8); err != nil {
			t.Fatal(err)
		}
		cancel()

		owners, err := victim.ProcessorIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 30*time.Second, victim.Name+" mid-handler", func(ctx context.Context) error {
			held, err := s.Held(ctx, owners)
			if err != nil {
				return err
			}
			if len(held) < 8 {
				return fmt.Errorf("%d events held", len(held))
			}
			return nil
		})
		victim.Kill()
		killed := time.Now()
		held, err := s.Held(ctx, owners)
		if err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, held...)

		// Recovery: until every event the dead worker held is done.
		firstReclaim := time.Duration(0)
		harness.Eventually(t, time.Minute, "orphans done", func(ctx context.Context) error {
			items, err := s.Ledger(ctx)
			if err != nil {
				return err
			}
			left := 0
			for _, k := range held {
				it := items[k]
				if it.Attempt > 1 && firstReclaim == 0 {
					firstReclaim = time.Since(killed)
				}
				if it.State != ledger.StateDone {
					left++
				}
			}
			if left > 0 {
				return fmt.Errorf("%d of %d orphaned events not done", left, len(held))
			}
			return nil
		})
		recovery := time.Since(killed)
		t.Logf("round %d: killed %s holding %d events mid-handler; first re-claim after %v; all recovered %v after the kill "+
			"(visibility/lease %v, handler %v)", round, victim.Name, len(held), firstReclaim.Round(100*time.Millisecond),
			recovery.Round(100*time.Millisecond), visibility, delay)
		if recovery >= 30*time.Second {
			t.Errorf("recovery took %v, over the seed's 30 s", recovery)
		}
		victim = successor
	}

	s.AwaitSettled(keys, time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.KeysIn(orphans...)})
	if tally.Reinvoked > len(orphans) {
		t.Errorf("%d keys re-invoked, but only %d were held by killed workers", tally.Reinvoked, len(orphans))
	}
}
