package scenarios

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/webhook"
)

// Issue 7, case 10: a paused process (a zombie). A worker is SIGSTOPped
// mid-handler for longer than its lease; another worker takes its events
// over; then it is SIGCONTed. Everything the zombie then writes is refused
// (its claims are fenced by owner and attempt), and its handler's context is
// cancelled as soon as a heartbeat finds the lease gone.
//
//   - "waiting": the zombie's handler is still in its delay when it resumes.
//     Before the pause a second copy of every message is in the queue, and
//     must be refused while the zombie's heartbeats extend its lease (a claim
//     that accepts a live lease, or heartbeats that never extend it, fail
//     here). After the resume, the zombie's run must be cut before the new
//     owner completes the event (an Extend without its fence keeps it going).
//   - "finished": the zombie's handler (no heartbeats, a lease longer than
//     the handler) has run out its delay when it resumes and tries to
//     complete: refused, so the event is
//     completed by the new owner's claim (a Complete without its fence would
//     complete it under the zombie's stale one).
func TestZombieWorker(t *testing.T) {
	t.Parallel()
	g := harness.NewGen(seed(t))
	n := form(6, 12)
	t.Run("waiting", func(t *testing.T) {
		s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
		zombie(t, s, g, n, harness.WorkerOptions{Processors: 2, AuditDelay: 2 * time.Minute}, true)
	})
	t.Run("finished", func(t *testing.T) {
		s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
		// No heartbeats, and a lease that outlives the handler: nothing but
		// the pause takes the events away from the zombie.
		zombie(t, s, g, n, harness.WorkerOptions{Processors: 2, AuditDelay: 5 * time.Second,
			Env: map[string]string{"WAHOOK_HEARTBEAT": "false", "WAHOOK_LEASE_DURATION": "10s"}}, false)
	})
}

func zombie(t *testing.T, s *harness.Stack, g *harness.Gen, n int, zo harness.WorkerOptions, copies bool) {
	ctx := t.Context()
	keys, entries := envelopeEntries(t, g.Messages(n))
	sendEntries(t, s, entries)
	z := s.StartWorker(zo)
	t.Cleanup(z.Kill)
	zIDs, err := z.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := func(ids map[string]bool, who string) {
		t.Helper()
		harness.Eventually(t, time.Minute, "every event held by "+who, func(ctx context.Context) error {
			h, err := s.Held(ctx, ids)
			if err != nil {
				return err
			}
			if len(h) != len(keys) {
				return fmt.Errorf("%d of %d held", len(h), len(keys))
			}
			return nil
		})
	}
	held(zIDs, z.Name)
	// Held is not yet running: the pause must come mid-handler. On a busy
	// machine a claim can land with its handler's first write still in
	// flight, and a pause there leaves the zombie's run unrecorded (its
	// handler's time is up when it wakes).
	harness.Eventually(t, time.Minute, "every event's handler running under "+z.Name, func(ctx context.Context) error {
		audit, err := s.Audit(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !zIDs[audit[k].Attempts[1]] {
				return fmt.Errorf("%s: runs %v", k, audit[k].Attempts)
			}
		}
		return nil
	})

	// The new owner's handler outlasts the zombie's resume by seconds, and it
	// has a processor for each event: it holds them all at once, however the
	// takeovers spread out (a processor takes no new batch before its last
	// one is done). Its lease is long enough that only the pause can take an
	// event away from anyone: with the stack's 3 s, a backend that stalled for
	// 3 s on a busy machine (the resumed zombie's breaker opened on five
	// failed calls in a row) let a new-owner lease lapse, and the zombie then
	// claimed the event afresh at attempt 3, correctly, but not the scenario.
	wo := harness.WorkerOptions{Processors: 2 * n, AuditDelay: 8 * time.Second,
		Env: map[string]string{"WAHOOK_LEASE_DURATION": "20s"}}
	var w *harness.Process
	if copies {
		w = s.StartWorker(wo)
		t.Cleanup(w.Kill)
		sendEntries(t, s, entries)
		// Each copy is refused twice: once at first sight, and again when it
		// comes back at the lease's first end, which heartbeats moved on.
		harness.Eventually(t, time.Minute, "each second copy refused twice", func(ctx context.Context) error {
			m, err := w.Metrics(ctx)
			if err != nil {
				return err
			}
			if got := m.Get("wahook_worker_claim_conflicts_total"); got < float64(2*n) {
				return fmt.Errorf("%v claim conflicts, want %d", got, 2*n)
			}
			return nil
		})
		items, err := s.Ledger(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if it := items[k]; it.Attempt != 1 || !zIDs[it.Owner] {
				t.Fatalf("%s: %s by %s at attempt %d while %s's lease was live: a copy claimed it", k, it.State, it.Owner, it.Attempt, z.Name)
			}
		}
	}

	fw := harness.FaultBegins("zombie worker (SIGSTOP past its lease, handler " + t.Name()[strings.LastIndexByte(t.Name(), '/')+1:] + ")")
	if err := z.Pause(); err != nil {
		t.Fatal(err)
	}
	if w == nil {
		w = s.StartWorker(wo)
		t.Cleanup(w.Kill)
	}
	wIDs, err := w.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held(wIDs, w.Name+" (taken over from the paused "+z.Name+")")
	if err := z.Resume(); err != nil {
		t.Fatal(err)
	}
	fw.Ends()
	// Whatever the zombie does after it wakes (a refused Extend or Complete,
	// or a write that fails on a connection the pause let die), it must end
	// its runs without a result of its own: the ledger says so below.
	harness.Eventually(t, time.Minute, z.Name+" to end its runs", func(ctx context.Context) error {
		h, err := z.Health(ctx)
		if err != nil {
			return err
		}
		if n := h.InFlight(); n != 0 {
			return fmt.Errorf("%d still in flight", n)
		}
		return nil
	})
	if m, err := z.Metrics(ctx); err == nil {
		t.Logf("%s after the resume: %v leases found lost", z.Name, m.Get("wahook_worker_leases_lost_total"))
	}
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
		owner, attempt, _ := strings.Cut(it.DoneBy, "#")
		if !wIDs[owner] || attempt != strconv.Itoa(it.Attempt) || it.Attempt != 2 {
			t.Errorf("%s completed by %q, ledger attempt %d: want %s's claim, attempt 2 (the zombie's write was not fenced)", k, it.DoneBy, it.Attempt, w.Name)
		}
		if !zIDs[a.Attempts[1]] || !wIDs[a.Attempts[2]] || len(a.Attempts) != 2 {
			t.Errorf("%s invoked under %v, want attempt 1 by %s and 2 by %s", k, a.Attempts, z.Name, w.Name)
		}
		if copies {
			cut, ok := a.Cancelled[1]
			switch {
			case !ok:
				t.Errorf("%s: the zombie's handler was never cancelled", k)
			case !cut.Before(it.DoneAt):
				t.Errorf("%s: the zombie's handler was cancelled at %s, after %s completed it at %s: its heartbeat kept a lost lease",
					k, cut.Format(time.TimeOnly), w.Name, it.DoneAt.Format(time.TimeOnly))
			}
		}
	}
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
}

// envelopeEntries returns the keys of msgs and a queue entry per event, as
// ingest would send them.
func envelopeEntries(t *testing.T, msgs []harness.Message) ([]string, []sqstypes.SendMessageBatchRequestEntry) {
	t.Helper()
	var keys []string
	var entries []sqstypes.SendMessageBatchRequestEntry
	received := time.Now()
	for _, m := range msgs {
		b, err := webhook.Parse(harness.NewGen(1).Payload([]harness.Message{m}, nil).JSON())
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events {
			body, err := envelope.FromEvent(ev, received).Encode()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, ev.Key)
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				MessageBody: aws.String(string(body)),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					envelope.AttrKey:  {DataType: aws.String("String"), StringValue: aws.String(ev.Key)},
					envelope.AttrKind: {DataType: aws.String("String"), StringValue: aws.String(string(ev.Kind))},
				},
			})
		}
	}
	return keys, entries
}

// sendEntries puts one copy of each entry on the stack's queue.
func sendEntries(t *testing.T, s *harness.Stack, entries []sqstypes.SendMessageBatchRequestEntry) {
	t.Helper()
	for i := 0; i < len(entries); i += 10 {
		batch := append([]sqstypes.SendMessageBatchRequestEntry(nil), entries[i:min(i+10, len(entries))]...)
		for j := range batch {
			batch[j].Id = aws.String(strconv.Itoa(j))
		}
		out, err := s.Suite.Clients.SQS.SendMessageBatch(t.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.QueueURL), Entries: batch})
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if len(out.Failed) != 0 {
			t.Fatalf("queue refused %d entries: %+v", len(out.Failed), out.Failed[0])
		}
	}
}
