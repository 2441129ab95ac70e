package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/shared/webhook/webhooktest"
)

// seedBody is the seed's Scenario 1 payload as written: no object, field or metadata.
const seedBody = webhooktest.SeedScenario1

const seedMessage = `{"id":"test_msg_001","from":"1234567890","text":{"body":"Test message"},"timestamp":"1642248600"}`

func TestSeedScenario1Twice(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	first, second := s.post(seedBody), s.post(seedBody)
	if first.code != http.StatusOK || first.summary != (server.Summary{Received: 1, Queued: 1}) {
		t.Errorf("first: %d %+v, want 200 with one queued", first.code, first.summary)
	}
	if second.code != http.StatusOK || second.summary != (server.Summary{Received: 1, Duplicates: 1}) {
		t.Errorf("second: %d %+v, want 200 with one duplicate", second.code, second.summary)
	}

	msgs := s.drain()
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the queue, want exactly 1", len(msgs))
	}
	m := msgs[0]
	if got := keyOf(m.MessageAttributes); got != "msg#test_msg_001" {
		t.Errorf("key attribute %q", got)
	}
	if got := aws.ToString(m.MessageAttributes[envelope.AttrKind].StringValue); got != "message" {
		t.Errorf("kind attribute %q", got)
	}
	env, err := envelope.Decode([]byte(aws.ToString(m.Body)))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if env.Key != "msg#test_msg_001" || env.Customer != "1234567890" || env.Timestamp != "1642248600" ||
		env.WABAID != "page_id" || compact(t, env.Payload) != seedMessage {
		t.Errorf("envelope %+v, payload %s", env, env.Payload)
	}
	if got := s.state("msg#test_msg_001"); got != ledger.StateQueued {
		t.Errorf("ledger state %q, want queued", got)
	}

	if n := s.metric("wahook_ingest_duplicates_total", nil); n != 1 {
		t.Errorf("duplicates_total = %v, want 1", n)
	}
	for result, want := range map[string]float64{"queued": 1, "duplicate": 1, "failed": 0} {
		if n := s.metric("wahook_ingest_events_total", map[string]string{"kind": "message", "result": result}); n != want {
			t.Errorf("events_total{message,%s} = %v, want %v", result, n, want)
		}
	}
}

func TestConcurrentIdenticalRequests(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	const n = 50
	body := messages("same", 1)
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = s.post(body)
		})
	}
	close(start)
	wg.Wait()

	queued, dups := 0, 0
	for i, r := range replies {
		if r.code != http.StatusOK {
			t.Errorf("request %d: status %d %+v, want 200", i, r.code, r.summary)
		}
		queued += r.summary.Queued
		dups += r.summary.Duplicates
	}
	if queued != 1 || dups != n-1 {
		t.Errorf("queued %d, duplicates %d over %d requests; want 1 and %d", queued, dups, n, n-1)
	}
	if msgs := s.drain(); len(msgs) != 1 {
		t.Errorf("%d messages in the queue, want exactly 1", len(msgs))
	}
	if got := s.metric("wahook_ingest_duplicates_total", nil); got != n-1 {
		t.Errorf("duplicates_total = %v, want %d", got, n-1)
	}
}

func TestBatchOf25UsesThreeCalls(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	r := s.post(messages("b25", 25))
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 25, Queued: 25}) {
		t.Fatalf("status %d %+v, want 200 with 25 queued", r.code, r.summary)
	}
	calls := s.queue.calls()
	if len(calls) > 3 {
		t.Errorf("%d SendMessageBatch calls, want at most 3", len(calls))
	}
	entries := 0
	for _, c := range calls {
		if len(c.Entries) > 10 {
			t.Errorf("a call with %d entries", len(c.Entries))
		}
		entries += len(c.Entries)
	}
	if entries != 25 {
		t.Errorf("%d entries sent, want 25", entries)
	}
	var want []string
	for i := range 25 {
		want = append(want, webhook.MessageKey(fmt.Sprintf("wamid-b25-%d", i)))
	}
	slices.Sort(want)
	if got := keys(s.drain()); !slices.Equal(got, want) {
		t.Errorf("queued keys %v, want %v", got, want)
	}
	for _, k := range want {
		if st := s.state(k); st != ledger.StateQueued {
			t.Errorf("%s: state %q, want queued", k, st)
		}
	}
}

func TestStatusesRejectsAndErrors(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	body := `{"object":"whatsapp_business_account","entry":[{"id":"waba-9","changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"pn-9"},
		"statuses":[
			{"id":"wamid.OUT1","status":"sent","timestamp":"1700000001","recipient_id":"15551234567"},
			{"id":"wamid.OUT1","status":"delivered","timestamp":"1700000002","recipient_id":"15551234567"},
			{"id":"wamid.OUT1","status":"read","timestamp":"1700000003","recipient_id":"15551234567"},
			{"status":"sent","timestamp":"1700000004"}
		],
		"messages":[{"from":"15551234567","text":{"body":"no id"}}],
		"errors":[{"code":131047,"title":"Re-engagement message"}]}}]}]}`
	r := s.post(body)
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 5, Queued: 3, Rejected: 2}) {
		t.Fatalf("status %d %+v, want 200 with 3 queued and 2 rejected", r.code, r.summary)
	}
	want := []string{"status#wamid.OUT1#delivered", "status#wamid.OUT1#read", "status#wamid.OUT1#sent"}
	msgs := s.drain()
	if got := keys(msgs); !slices.Equal(got, want) {
		t.Errorf("queued keys %v, want %v", got, want)
	}
	for _, m := range msgs {
		if kind := aws.ToString(m.MessageAttributes[envelope.AttrKind].StringValue); kind != "status" {
			t.Errorf("kind attribute %q, want status", kind)
		}
	}
	for labels, want := range map[[2]string]float64{
		{"status", "queued"}: 3, {"status", "rejected"}: 1, {"message", "rejected"}: 1,
	} {
		if n := s.metric("wahook_ingest_events_total", map[string]string{"kind": labels[0], "result": labels[1]}); n != want {
			t.Errorf("events_total%v = %v, want %v", labels, n, want)
		}
	}
	if n := s.metric("wahook_ingest_webhook_reported_errors_total", nil); n != 1 {
		t.Errorf("webhook_reported_errors_total = %v, want 1", n)
	}
}

func TestFIFOQueueGetsGroupAndDeduplicationIDs(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{fifo: true})
	if r := s.post(messages("fifo", 3)); r.code != http.StatusOK || r.summary.Queued != 3 {
		t.Fatalf("status %d %+v", r.code, r.summary)
	}
	for _, c := range s.queue.calls() {
		for _, e := range c.Entries {
			key := keyOf(e.MessageAttributes)
			sum := sha256.Sum256([]byte(key))
			env, err := envelope.Decode([]byte(aws.ToString(e.MessageBody)))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := aws.ToString(e.MessageGroupId), "pn-1:"+env.Customer; got != want {
				t.Errorf("%s: MessageGroupId %q, want %q", key, got, want)
			}
			if got, want := aws.ToString(e.MessageDeduplicationId), hex.EncodeToString(sum[:]); got != want {
				t.Errorf("%s: MessageDeduplicationId %q, want %q", key, got, want)
			}
		}
	}
	msgs := s.drain()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	for _, m := range msgs {
		if g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]; g == "" {
			t.Errorf("%s: received without a MessageGroupId", keyOf(m.MessageAttributes))
		}
	}
}

func TestStandardQueueHasNoFIFOIDs(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	if r := s.post(messages("std", 2)); r.code != http.StatusOK {
		t.Fatalf("status %d", r.code)
	}
	for _, c := range s.queue.calls() {
		for _, e := range c.Entries {
			if e.MessageGroupId != nil || e.MessageDeduplicationId != nil {
				t.Errorf("standard queue entry with FIFO ids: %+v", e)
			}
		}
	}
}

func TestSQSOutageReleasesThenRetryQueues(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	s.queue.setFault(func(context.Context, *sqs.SendMessageBatchInput) ([]string, error) { return nil, errInjected })
	body := messages("outage", 12)

	r := s.post(body)
	if r.code != http.StatusServiceUnavailable || r.summary != (server.Summary{Received: 12, Failed: 12}) {
		t.Fatalf("during the outage: %d %+v, want 503 with 12 failed", r.code, r.summary)
	}
	for i := range 12 {
		k := webhook.MessageKey(fmt.Sprintf("wamid-outage-%d", i))
		if st := s.state(k); st != "" {
			t.Errorf("%s: ledger state %q after a failed send, want no item (released)", k, st)
		}
	}
	if n := s.metric("wahook_ingest_backend_errors_total", map[string]string{"backend": "sqs", "operation": "send_message_batch"}); n != 2 {
		t.Errorf("backend_errors_total{sqs,send_message_batch} = %v, want 2 (two batches)", n)
	}
	if n := s.metric("wahook_ingest_events_total", map[string]string{"result": "failed"}); n != 12 {
		t.Errorf("events_total{failed} = %v, want 12", n)
	}

	s.queue.setFault(nil) // SQS is back; Meta retries
	r = s.post(body)
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 12, Queued: 12}) {
		t.Fatalf("retry: %d %+v, want 200 with 12 queued", r.code, r.summary)
	}
	if msgs := s.drain(); len(msgs) != 12 {
		t.Errorf("%d messages in the queue, want 12", len(msgs))
	}
}

func TestRefusedEntryReleasedOthersQueued(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	refused := webhook.MessageKey("wamid-partial-1")
	s.queue.setFault(func(context.Context, *sqs.SendMessageBatchInput) ([]string, error) { return []string{refused}, nil })
	body := messages("partial", 3)

	r := s.post(body)
	if r.code != http.StatusServiceUnavailable || r.summary != (server.Summary{Received: 3, Queued: 2, Failed: 1}) {
		t.Fatalf("%d %+v, want 503 with 2 queued and 1 failed", r.code, r.summary)
	}
	if st := s.state(refused); st != "" {
		t.Errorf("refused event: ledger state %q, want released", st)
	}
	if n := s.metric("wahook_ingest_backend_errors_total", map[string]string{"backend": "sqs", "operation": "send_message"}); n != 1 {
		t.Errorf("backend_errors_total{sqs,send_message} = %v, want 1", n)
	}

	s.queue.setFault(nil)
	r = s.post(body)
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 3, Queued: 1, Duplicates: 2}) {
		t.Fatalf("retry: %d %+v, want 200 with 1 queued and 2 duplicates", r.code, r.summary)
	}
	want := []string{webhook.MessageKey("wamid-partial-0"), refused, webhook.MessageKey("wamid-partial-2")}
	if got := keys(s.drain()); !slices.Equal(got, want) {
		t.Errorf("queued keys %v, want each once: %v", got, want)
	}
}

// An ingest that crashed between its Admit and its send leaves the item
// `received`. Meta's retry must end with the event enqueued: an immediate retry
// is told to come back (503) while the item is younger than the resend window;
// one after the window takes the item over and sends it.
func TestCrashAfterAdmitIsRecoveredByRetry(t *testing.T) {
	t.Parallel()
	// The window is long enough that the immediate retry comes within it even
	// on a busy machine; the second retry waits for the window to pass.
	const window = 3 * time.Second
	s := newStack(t, options{resendWindow: window, inFlightWait: 50 * time.Millisecond})
	key := webhook.MessageKey("wamid-crash-0")
	crashed, err := s.store.Admit(t.Context(), key) // ... and the process died here
	if err != nil || crashed.Receipt == nil {
		t.Fatalf("admit: %+v, %v", crashed, err)
	}
	body := messages("crash", 1)

	r := s.post(body)
	if r.code != http.StatusServiceUnavailable || r.summary != (server.Summary{Received: 1, Failed: 1}) {
		t.Fatalf("immediate retry: %d %+v, want 503 with 1 failed (never 200 as a duplicate of nothing)", r.code, r.summary)
	}
	if st := s.state(key); st != ledger.StateReceived {
		t.Errorf("after the immediate retry: state %q, want received", st)
	}

	eventually(t, 2*window, "the item to outgrow the resend window", func() bool {
		item, err := s.store.Get(t.Context(), key)
		return err == nil && time.Since(item.ReceivedAt) > window
	})
	r = s.post(body)
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 1, Queued: 1}) {
		t.Fatalf("retry after the window: %d %+v, want 200 with 1 queued", r.code, r.summary)
	}
	if got := keys(s.drain()); !slices.Equal(got, []string{key}) {
		t.Errorf("queued keys %v, want [%s]", got, key)
	}
	if st := s.state(key); st != ledger.StateQueued {
		t.Errorf("state %q, want queued", st)
	}
	// Should the crashed process wake up, its receipt no longer moves the item.
	if moved, err := s.store.MarkQueued(t.Context(), *crashed.Receipt); err != nil || moved {
		t.Errorf("stale MarkQueued: moved %v, err %v; want false, nil", moved, err)
	}
}

// With an in-flight wait longer than the resend window, even the immediate
// retry takes the stale item over within one request.
func TestCrashAfterAdmitPatientRetry(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{resendWindow: 200 * time.Millisecond, inFlightWait: time.Second})
	key := webhook.MessageKey("wamid-patient-0")
	if _, err := s.store.Admit(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	r := s.post(messages("patient", 1))
	if r.code != http.StatusOK || r.summary != (server.Summary{Received: 1, Queued: 1}) {
		t.Fatalf("%d %+v, want 200 with 1 queued", r.code, r.summary)
	}
	if got := keys(s.drain()); !slices.Equal(got, []string{key}) {
		t.Errorf("queued keys %v", got)
	}
}

// The client (Meta, a load balancer) goes away while the events are being
// sent: the request's context is cancelled, but the events this request owns
// are still sent and marked (or released), never left `received`.
func TestClientGoneAfterAdmission(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		sendFails bool
		want      ledger.State
	}{
		{"send succeeds", false, ledger.StateQueued},
		{"send fails", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, options{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s.queue.setFault(func(sendCtx context.Context, _ *sqs.SendMessageBatchInput) ([]string, error) {
				cancel() // the client hangs up mid-request
				if err := sendCtx.Err(); err != nil {
					t.Errorf("send context ended with the client: %v", err)
				}
				if tc.sendFails {
					return nil, errInjected
				}
				return nil, nil
			})
			batch, err := webhook.Parse([]byte(messages("gone", 3)))
			if err != nil {
				t.Fatal(err)
			}
			res := s.pipe.Process(ctx, batch, s.log)
			if ctx.Err() == nil {
				t.Fatal("the fault did not cancel the request context")
			}
			wantQueued := 3
			if tc.sendFails {
				wantQueued = 0
			}
			if res.Queued != wantQueued || res.Failed != 3-wantQueued {
				t.Errorf("result %+v, want %d queued", res, wantQueued)
			}
			for i := range 3 {
				k := webhook.MessageKey(fmt.Sprintf("wamid-gone-%d", i))
				if st := s.state(k); st != tc.want {
					t.Errorf("%s: state %q, want %q", k, st, tc.want)
				}
			}
		})
	}
}

// faultyLedger fails Acquire for one key, as a DynamoDB outage would.
type faultyLedger struct {
	*ledger.Store
	failKey string
}

func (l faultyLedger) Acquire(ctx context.Context, key string) (ledger.Receipt, error) {
	if key == l.failKey {
		return ledger.Receipt{}, fmt.Errorf("acquire %s: %w", key, errInjected)
	}
	return l.Store.Acquire(ctx, key)
}

func TestAdmitFailureAnswers503(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	failing := webhook.MessageKey("wamid-adm-1")
	batch, err := webhook.Parse([]byte(messages("adm", 3)))
	if err != nil {
		t.Fatal(err)
	}
	p := pipelineWith(t, s, faultyLedger{Store: s.store, failKey: failing})
	res := p.Process(t.Context(), batch, s.log)
	if res.Queued != 2 || res.Failed != 1 || res.Complete() {
		t.Fatalf("result %+v, want 2 queued and 1 failed", res)
	}
	if st := s.state(failing); st != "" {
		t.Errorf("failing key: state %q, want no item", st)
	}
	if got := keys(s.drain()); len(got) != 2 || slices.Contains(got, failing) {
		t.Errorf("queued keys %v", got)
	}
}

// Large events are split across calls by size, within SQS's 256 KiB a call.
func TestLargeEventsSplitBySize(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	text := strings.Repeat("ü", 50_000) // 100 KB of UTF-8 each
	var msgs []string
	for i := range 4 {
		msgs = append(msgs, fmt.Sprintf(`{"id":"wamid-big-%d","from":"1555","text":{"body":%q}}`, i, text))
	}
	body := `{"entry":[{"changes":[{"value":{"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`
	r := s.post(body)
	if r.code != http.StatusOK || r.summary.Queued != 4 {
		t.Fatalf("%d %+v, want 200 with 4 queued", r.code, r.summary)
	}
	calls := s.queue.calls()
	if len(calls) < 2 {
		t.Errorf("%d calls for 400 KB of events, want them split", len(calls))
	}
	for i, c := range calls {
		size := 0
		for _, e := range c.Entries {
			size += len(aws.ToString(e.MessageBody))
			for k, v := range e.MessageAttributes {
				size += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
			}
		}
		if size > pipeline.MaxBatchBytes {
			t.Errorf("call %d carries %d bytes, over %d", i, size, pipeline.MaxBatchBytes)
		}
	}
	if got := s.drain(); len(got) != 4 {
		t.Errorf("%d messages in the queue, want 4", len(got))
	}
}

// An event that can never fit in one SQS message is rejected for good: the
// rest of the webhook is queued and answered 200 (no 503 that Meta would
// retry for days), the big one is counted as too_large and recorded as
// rejected (reject_test.go checks its dead-letter copy).
func TestTooLargeEventRejectedOthersQueued(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	big := fmt.Sprintf(`{"id":"wamid-huge","from":"1555","type":"text","text":{"body":%q}}`, strings.Repeat("x", 300*1024))
	small := `{"id":"wamid-small","from":"1555","type":"text","text":{"body":"hi"}}`
	body := `{"entry":[{"changes":[{"value":{"messages":[` + small + `,` + big + `]}}]}]}`
	r := s.post(body)
	if r.code != http.StatusOK || r.summary.Queued != 1 || r.summary.Rejected != 1 || r.summary.Failed != 0 {
		t.Fatalf("%d %+v, want 200 with 1 queued and 1 rejected", r.code, r.summary)
	}
	if got := keys(s.drain()); !slices.Equal(got, []string{"msg#wamid-small"}) {
		t.Errorf("queue holds %v, want only the small event", got)
	}
	if st := s.state("msg#wamid-small"); st != ledger.StateQueued {
		t.Errorf("small event %q in the ledger, want queued", st)
	}
	if st := s.state("msg#wamid-huge"); st != ledger.StateRejected {
		t.Errorf("big event %q in the ledger, want rejected", st)
	}
	if got := s.metric("wahook_ingest_events_total", map[string]string{"result": metrics.ResultTooLarge}); got != 1 {
		t.Errorf("too_large events %v, want 1", got)
	}
	if got := s.metric("wahook_ingest_events_total", map[string]string{"result": metrics.ResultFailed}); got != 0 {
		t.Errorf("failed events %v, want 0", got)
	}
}
