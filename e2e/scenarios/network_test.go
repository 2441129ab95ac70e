package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/ledger"
)

// Scenario 6: cut one worker's links to SQS and DynamoDB while its handlers
// run (refused, black-holed, replies dropped; in the long form also reset and
// slowed), with a second worker available → the events the cut worker held
// are completed by the other once their lease and visibility run out, the cut
// worker cannot complete them when its network comes back, nothing is lost.
func TestNetworkFailure(t *testing.T) {
	t.Parallel()
	const visibility = 5 * time.Second
	const delay = 1500 * time.Millisecond
	faults := form(
		[]harness.Fault{harness.FaultRefuse, harness.FaultBlackhole, harness.FaultDropReplies},
		harness.AllFaults)
	s := harness.NewStack(t, harness.StackOptions{Visibility: visibility})
	s.StartIngest(nil)
	cut := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: delay})
	s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: delay})
	g := harness.NewGen(seed(t))
	ctx := t.Context()
	owners, err := cut.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var keys []string
	for _, f := range faults {
		payloads := g.Batches(g.Messages(30), 5)
		keys = append(keys, keysOf(payloads)...)
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := s.Client().DeliverAll(dctx, bodiesOf(payloads), 8); err != nil {
			t.Fatal(err)
		}
		cancel()
		harness.Eventually(t, 30*time.Second, cut.Name+" mid-handler", func(ctx context.Context) error {
			held, err := s.Held(ctx, owners)
			if err != nil {
				return err
			}
			if len(held) == 0 {
				return fmt.Errorf("%s holds nothing yet", cut.Name)
			}
			return nil
		})

		for _, l := range []*harness.Link{cut.DynamoDB, cut.SQS} {
			if err := l.Apply(f); err != nil {
				t.Fatal(err)
			}
		}
		cutAt := time.Now()
		held, err := s.Held(ctx, owners)
		if err != nil {
			t.Fatal(err)
		}
		if f != harness.FaultLatency {
			// The worker's own health checks go through its links: they must see the cut.
			harness.Eventually(t, 20*time.Second, cut.Name+" reports its backends down", func(ctx context.Context) error {
				h, err := cut.Health(ctx)
				if err != nil {
					return err
				}
				if h.Components["dynamodb"].Status == "connected" || h.Components["sqs"].Status == "connected" {
					return fmt.Errorf("health %s, components %v", h.Status, h.Components)
				}
				return nil
			})
		}
		// While the network stays cut, the events the worker held are finished
		// (by the other worker, or — replies dropped — by the cut worker's own
		// writes, which land unseen).
		harness.Eventually(t, time.Minute, "held events done while cut", func(ctx context.Context) error {
			items, err := s.Ledger(ctx)
			if err != nil {
				return err
			}
			left := 0
			for _, k := range held {
				if items[k].State != ledger.StateDone {
					left++
				}
			}
			if left > 0 {
				return fmt.Errorf("%d of %d held events not done", left, len(held))
			}
			return nil
		})
		finished := time.Since(cutAt)
		for _, l := range []*harness.Link{cut.DynamoDB, cut.SQS} {
			if err := l.Restore(); err != nil {
				t.Fatal(err)
			}
		}
		restored := time.Now()
		harness.Eventually(t, 45*time.Second, cut.Name+" healthy again", func(ctx context.Context) error {
			h, err := cut.Health(ctx)
			if err != nil {
				return err
			}
			if h.Status != "healthy" || h.Breaker.State == "open" {
				return fmt.Errorf("health %s, breaker %s", h.Status, h.Breaker.State)
			}
			return nil
		})
		t.Logf("%s: %s held %d events mid-handler; all done %v into the cut; healthy %v after the restore",
			f, cut.Name, len(held), finished.Round(100*time.Millisecond), time.Since(restored).Round(100*time.Millisecond))
	}

	s.AwaitSettled(keys, 2*time.Minute)
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
}
