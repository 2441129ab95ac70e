package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Issue 7, case 11: ingest's send path under faults, during a Meta-style
// delivery run (every webhook retried until a 200).
//
// Phase 1: SendMessageBatch partial failures — a quarter of the events' first
// send fails (SenderFault false). Ingest must answer 503 for those webhooks
// and release the events' items, so that Meta's next attempt sends them
// afresh and is answered 200. Treated as sent, an event would be acknowledged
// and never queued (it would not settle); not released, the retry would find
// it `received` by a request that no longer owns it and be refused again until
// the resend window — which ingest's log says. (The number of attempts is only
// reported: on a busy machine an attempt may fail on its own, a call past its
// timeout, and the victim's one injected failure then hits the next attempt.)
//
// Phase 2: ingest's SQS link cut for one ingest and slowed past the send
// timeout for the other (a send that may land after ingest gave up on it).
// Every accepted event is still completed exactly once.
func TestIngestSendFaults(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.StackOptions{})
	in1, in2 := s.StartIngest(nil), s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	g := harness.NewGen(seed(t))
	c := s.Client()
	ctx, cancel := contextWithTimeout(t, 4*time.Minute)
	defer cancel()

	// Phase 1.
	msgs := g.Messages(form(120, 600))
	victims := map[string]bool{}
	for i, m := range msgs {
		if i%4 == 0 {
			victims[m.ID] = true
		}
	}
	fw1 := harness.FaultBegins("SendMessageBatch partial failures (a quarter of first sends)")
	partial := s.Inject(harness.RoleIngest, harness.SQS, harness.PartialBatch().On("SendMessageBatch").Once().
		Entries(func(e map[string]any) bool {
			body, _ := e["MessageBody"].(string)
			for id := range victims {
				if strings.Contains(body, `"`+id+`"`) {
					return true
				}
			}
			return false
		}))
	payloads := g.Batches(msgs, 5)
	keys := keysOf(payloads)
	deliveries, err := c.DeliverAll(ctx, bodiesOf(payloads), 8)
	if err != nil {
		t.Fatal(err)
	}
	if got := partial.Hits(); got != int64(len(victims)) {
		t.Errorf("%d entries failed, want each of the %d victims once", got, len(victims))
	}
	refused, maxAttempts := 0, 0
	for i, d := range deliveries {
		maxAttempts = max(maxAttempts, len(d.Attempts))
		if len(d.Attempts) > 2 {
			// A slow machine may fail an attempt on its own (a call past its
			// timeout); the victim's injected failure then comes on the next.
			t.Logf("webhook %d needed %d attempts (%v)", i, len(d.Attempts), d.Attempts)
		}
		refused += len(d.Attempts) - 1
	}
	t.Logf("phase 1: %d of %d events' first send failed; %d webhooks, %d refused attempts, at most %d attempts each",
		partial.Hits(), len(msgs), len(payloads), refused, maxAttempts)
	// An event whose send failed and was not released is still `received` by
	// a request that has answered: Meta's retry finds it so and is refused
	// ("being enqueued by another request") until the resend window lets it
	// take the item over ("left received").
	for _, text := range []string{"is being enqueued by another request", "left received by a request"} {
		if lines := logLines(t, s.Processes(harness.RoleIngest), text); len(lines) > 0 {
			t.Errorf("%d ingest log lines in phase 1 say %q: a failed send was not released for Meta's retry, e.g. %s",
				len(lines), text, lines[0])
		}
	}
	s.ClearInjections()
	fw1.Ends()
	keys1 := keys

	// Phase 2.
	more := g.Batches(g.Messages(form(120, 600)), 5)
	keys = append(keys, keysOf(more)...)
	fw2 := harness.FaultBegins("ingest's SQS link cut 3 s, sends slowed past the send timeout")
	if err := in1.SQS.Apply(harness.FaultRefuse); err != nil {
		t.Fatal(err)
	}
	slow := s.Inject(harness.RoleIngest, harness.SQS, harness.Delay(4*time.Second).On("SendMessageBatch").Probability(0.3).For(8*time.Second))
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		if err := in1.SQS.Restore(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := c.DeliverAll(ctx, bodiesOf(more), 8); err != nil {
		t.Fatal(err)
	}
	<-restored
	s.ClearInjections()
	fw2.Ends()
	t.Logf("phase 2: %s's SQS link cut for 3s, %d of %s's sends slowed past the send timeout", in1.Name, slow.Hits(), in2.Name)
	if slow.Hits() == 0 {
		t.Error("no send was slowed: the fault did not happen as planned")
	}

	s.AwaitSettled(keys, 2*time.Minute)
	s.Report(fw1, keys1)
	s.Report(fw2, keys[len(keys1):])
	s.CheckInvariants(harness.Expect{Keys: keys})
}
