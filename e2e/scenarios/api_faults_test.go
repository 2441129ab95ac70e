package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Issue 7, case 1: the ledger table's writes throttled, its reads fine, for
// longer than the queue's receive budget (maxReceiveCount 3, visibility 2 s).
// A read probe would close the workers' breakers, claims would fail, receive
// counts would burn and SQS would redrive events to the DLQ while the ledger
// says queued. Required: the breakers stay open (their probe is a write), no
// message is received while they are, no 200 is answered for an event that
// could not be recorded, and after the fault every event is done once, the
// DLQ empty.
func TestLedgerWritesThrottled(t *testing.T) {
	t.Parallel()
	fault := form(15*time.Second, 60*time.Second)
	const visibility = 2 * time.Second
	s := harness.NewStack(t, harness.StackOptions{Visibility: visibility, MaxReceiveCount: 3, MaxAttempts: 1})
	s.StartIngest(nil)
	s.StartIngest(nil)
	w1 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 200 * time.Millisecond})
	w2 := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 200 * time.Millisecond})
	g := harness.NewGen(seed(t))
	ctx := t.Context()
	c := s.Client()

	backlog := g.Batches(g.Messages(150), 10)
	keys := keysOf(backlog)
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.DeliverAll(dctx, bodiesOf(backlog), 8); err != nil {
		t.Fatal(err)
	}

	// Writes throttled, reads fine: one line. The fault lasts until it is
	// cleared below, after the last reading taken under it: a window that
	// closed by itself would end while a slow machine was still reading, and
	// what then happened (a 200, a receive) would be counted against it.
	throttle := s.InjectAll(harness.DynamoDB, harness.Throttle().On(harness.DynamoDBWrites...).
		Matching(harness.Table(s.LedgerTable)))
	began := time.Now()
	fw := harness.FaultBegins("ledger writes throttled, reads fine")
	q, _, err := s.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger writes throttled for %v with %s in the queue", fault, q)

	// Webhooks keep arriving, delivered like Meta: retried until a 200.
	during := g.Batches(g.Messages(40), 4)
	keys = append(keys, keysOf(during)...)
	sp := deliverSpread(ctx, c, bodiesOf(during), fault)

	harness.Eventually(t, fault/2, "both workers' breakers open", func(ctx context.Context) error {
		for _, w := range []*harness.Process{w1, w2} {
			h, err := w.Health(ctx)
			if err != nil {
				return err
			}
			if h.Breaker.State != "open" {
				return fmt.Errorf("%s: breaker %s", w.Name, h.Breaker.State)
			}
		}
		return nil
	})
	openedAt := time.Now()
	received := func() float64 {
		n, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_messages_received_total")
		if err != nil {
			t.Fatalf("worker metrics: %v", err)
		}
		return n
	}
	before := received()
	// Hold the fault for its full length.
	select {
	case <-time.After(time.Until(began.Add(fault))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	whileOpen := received() - before
	restoredAt := time.Now() // whatever ended before this, ended under the fault
	s.ClearInjections()
	fw.Ends()
	if throttle.Hits() == 0 {
		t.Fatal("no write was throttled: the fault did not happen")
	}
	if whileOpen > 0 {
		t.Errorf("%v messages received in the %v the breakers were open while writes were throttled, want 0 (each burns a receive count)",
			whileOpen, restoredAt.Sub(openedAt).Round(100*time.Millisecond))
	}

	var status200 int
	for _, d := range sp.wait(t) {
		for _, a := range d.Attempts {
			if a.Err == nil && a.Status == http.StatusOK && a.Start.Add(a.Latency).Before(restoredAt) && a.Start.After(began.Add(2*time.Second)) {
				status200++
			}
		}
	}
	if status200 > 0 {
		t.Errorf("%d webhooks answered 200 while the ledger's writes were throttled", status200)
	}

	s.AwaitSettled(keys, 2*time.Minute)
	t.Logf("%d writes throttled; all %d events done %v after the fault", throttle.Hits(), len(keys),
		time.Since(restoredAt).Round(100*time.Millisecond))
	s.Report(fw, keys)
	// A handler that finished while Complete was throttled runs again under a
	// new claim once its lease lapses: allowed, fenced, counted.
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
}

// Issue 7, case 2: lost replies. One in ten of the ledger's writes (Acquire,
// MarkQueued, TakeOver, Release, Claim, Extend, Complete, Fail, GiveBack) and
// of SQS's sends and deletes land but their reply is lost; the SDK retries
// them. Each retry must be recognised as the write that landed: every event
// completed exactly once with the handler run once (no false "lease lost",
// no re-run), no 503 storm, nothing left received or processing.
func TestLostReplies(t *testing.T) {
	t.Parallel()
	n := form(200, 1000)
	s := harness.NewStack(t, harness.StackOptions{})
	// The subject is a reply lost, not a slow one: a call's bound of 10 s
	// (the harness's is 3 s) leaves room for the SDK's back-off after a lost
	// reply on a machine so busy that the backend stalls for seconds, where a
	// call that ran out of time would cost a 503 or a lease for no fault of
	// the write's recognition.
	bound := map[string]string{"WAHOOK_BACKEND_TIMEOUT": "10s"}
	s.StartIngest(bound)
	s.StartIngest(bound)
	s.StartWorker(harness.WorkerOptions{Processors: 4, Env: bound})
	s.StartWorker(harness.WorkerOptions{Processors: 4, Env: bound})
	fw := harness.FaultBegins("lost replies: 10% of ledger writes, SQS sends and deletes")
	ledgerLost := s.InjectAll(harness.DynamoDB, harness.LoseReply().On(harness.DynamoDBWrites...).
		Matching(harness.Table(s.LedgerTable)).Probability(0.1))
	sqsLost := s.InjectAll(harness.SQS, harness.LoseReply().On("SendMessageBatch", "SendMessage", "DeleteMessageBatch").Probability(0.1))

	g := harness.NewGen(seed(t))
	payloads := g.Batches(g.Messages(n), 5)
	keys := keysOf(payloads)
	ctx, cancel := contextWithTimeout(t, 3*time.Minute)
	defer cancel()
	deliveries, err := s.Client().DeliverAll(ctx, bodiesOf(payloads), 8)
	if err != nil {
		t.Fatal(err)
	}
	attempts, refused := 0, 0
	for _, d := range deliveries {
		for _, a := range d.Attempts {
			attempts++
			if !a.OK() {
				refused++
			}
		}
	}
	s.AwaitSettled(keys, 2*time.Minute)
	s.ClearInjections()
	s.Report(fw, keys)
	t.Logf("%d ledger replies and %d SQS replies lost; %d webhooks in %d attempts, %d refused",
		ledgerLost.Hits(), sqsLost.Hits(), len(payloads), attempts, refused)
	if ledgerLost.Hits() < int64(n/10) || sqsLost.Hits() == 0 {
		t.Fatalf("too few replies lost (%d ledger, %d SQS): the fault did not happen as planned", ledgerLost.Hits(), sqsLost.Hits())
	}
	// A lost reply the SDK retries three times in a row (one in a thousand)
	// may still cost a 503 and Meta's retry; a storm would not.
	if refused > len(payloads)/20 {
		t.Errorf("%d of %d webhook attempts refused: a 503 storm", refused, attempts)
	}
	// Exactly once: no key re-invoked but after a lease that ran out.
	s.CheckInvariants(harness.Expect{Keys: keys})
	// No false "lease lost": a write whose retry was refused because its
	// first try landed. A lease that ran out with no extension answered
	// (the backend stalled past the call's bound) is counted apart: it is
	// the time, not the recognition of a landed write.
	lost, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_leases_lost_total")
	if err != nil {
		t.Fatal(err)
	}
	lapsed, err := s.SumMetric(t.Context(), harness.RoleWorker, "wahook_worker_heartbeats_total", "result", "lease_lapsed")
	if err != nil {
		t.Fatal(err)
	}
	if lapsed > 0 {
		t.Logf("%v leases ran out with no extension answered in time (a stalled backend)", lapsed)
	}
	if lost-lapsed != 0 {
		t.Errorf("workers report %v leases lost to a refused write; no lease was lost, only replies", lost-lapsed)
	}
}

// ledgerCall matches the ledger's UpdateItem calls whose update expression
// contains fragment: a way to slow one kind of write (Claim, Extend,
// Complete) and not the others.
func ledgerCall(fragment string) func(op string, body []byte) bool {
	f := []byte(fragment)
	return func(op string, body []byte) bool { return op == "UpdateItem" && bytes.Contains(body, f) }
}

// Issue 7, case 3: a slow backend. 2 s added to one operation at a time —
// the ledger's Claim, Extend and Complete, and ingest's SendMessageBatch —
// with a 3 s visibility timeout and handlers that run across heartbeats.
// Heartbeats count from the receive, so a slow claim never lets the message
// reappear before the first one; every event is completed once, and no
// attempt is ever invoked twice (two runs may share a key only under two
// claims).
//
// It runs alone (no t.Parallel): its 2 s delays against a 3 s visibility
// leave about a second for every other call of the message's handling. The
// workers' call bound is 6 s, so that a slowed call is slow, not timed out
// and retried (a busy machine pushed a 2 s Complete past the harness's 3 s
// bound three times over, and its message reappeared once the result write
// gave up).
func TestSlowBackend(t *testing.T) {
	n := form(20, 100)
	s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
	s.StartIngest(nil)
	wo := harness.WorkerOptions{Processors: 4, AuditDelay: 2500 * time.Millisecond, Env: map[string]string{"WAHOOK_BACKEND_TIMEOUT": "6s"}}
	s.StartWorker(wo)
	s.StartWorker(wo)
	g := harness.NewGen(seed(t))
	var keys []string
	for _, slow := range []struct {
		name string
		role harness.Role
		api  harness.API
		rule harness.Rule
		// heartbeats cover the slow call: its message must not reappear.
		// (Every case now; kept to say so per case.)
		covered bool
	}{
		{"claim", harness.RoleWorker, harness.DynamoDB, harness.Delay(2 * time.Second).Matching(ledgerCall("if_not_exists(#attempt")), true},
		{"extend", harness.RoleWorker, harness.DynamoDB, harness.Delay(2 * time.Second).Matching(ledgerCall(`"SET #lease_until = :until"`)), true},
		{"complete", harness.RoleWorker, harness.DynamoDB, harness.Delay(2 * time.Second).Matching(ledgerCall("#state = :done")), true},
		{"send", harness.RoleIngest, harness.SQS, harness.Delay(2 * time.Second).On("SendMessageBatch"), true},
	} {
		received := s.Received()
		fw := harness.FaultBegins("2 s added to " + slow.name)
		inj := s.Inject(slow.role, slow.api, slow.rule)
		payloads := g.Batches(g.Messages(n), 5)
		phase := keysOf(payloads)
		keys = append(keys, phase...)
		ctx, cancel := contextWithTimeout(t, 2*time.Minute)
		if _, err := s.Client().DeliverAll(ctx, bodiesOf(payloads), 4); err != nil {
			t.Fatal(err)
		}
		cancel()
		took := s.AwaitSettled(keys, 2*time.Minute)
		s.ClearInjections()
		s.Report(fw, phase)
		if inj.Hits() == 0 {
			t.Fatalf("%s: nothing was slowed: the fault did not happen as planned", slow.name)
		}
		again := s.Received() - received - int64(len(phase))
		t.Logf("%s slowed by 2s (%d calls): %d events settled %v after delivery, %d messages delivered again",
			slow.name, inj.Hits(), len(phase), took.Round(100*time.Millisecond), again)
		// Heartbeats go on through the result write and the delete, so a
		// slow Complete is covered too (TestResultWriteNotCutShort holds one
		// longer than the visibility timeout to zero redeliveries).
		if slow.covered && again > 1 {
			t.Errorf("%s slowed: %d messages delivered again while their handling went on (heartbeats must count from the receive)", slow.name, again)
		}
	}
	// Exactly once; and above, each message handed out once where heartbeats
	// cover the slow call: a message that reappeared while its claim was slow
	// (heartbeats counted from the handler's start) is delivered again, even
	// where its live lease keeps the second claim out.
	s.CheckInvariants(harness.Expect{Keys: keys})
}
