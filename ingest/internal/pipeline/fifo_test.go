package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// conversationBody is a webhook body with n inbound messages
// wamid-<prefix>-<i>, alternating between two customers (two conversations).
func conversationBody(prefix string, n int) (body string, order map[string][]string) {
	order = map[string][]string{}
	var msgs []string
	for i := range n {
		from := fmt.Sprintf("1555000200%d", i%2)
		id := fmt.Sprintf("wamid-%s-%02d", prefix, i)
		msgs = append(msgs, fmt.Sprintf(`{"id":%q,"from":%q,"timestamp":"1700000000","type":"text","text":{"body":"m%d"}}`, id, from, i))
		order["pn-1:"+from] = append(order["pn-1:"+from], "msg#"+id)
	}
	return `{"object":"whatsapp_business_account","entry":[{"id":"waba-1","changes":[{"field":"messages","value":{` +
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"pn-1"},` +
		`"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`, order
}

// drainGroups receives and deletes everything in a FIFO queue (SQS delivers
// no more of a group while some of it is in flight), returning each group's
// keys in the order the queue delivered them.
func (s *stack) drainGroups() map[string][]string {
	s.t.Helper()
	got := map[string][]string{}
	for {
		out, err := s.clients.SQS.ReceiveMessage(s.t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
		})
		if err != nil {
			s.t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
			got[g] = append(got[g], keyOf(m.MessageAttributes))
			if _, err := s.clients.SQS.DeleteMessage(s.t.Context(), &sqs.DeleteMessageInput{
				QueueUrl: aws.String(s.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				s.t.Fatalf("delete: %v", err)
			}
		}
	}
}

// FIFO order requirement (issue 11, pipeline/fifo.go): a body's events of one
// conversation enter a FIFO queue in the body's order, even when its first
// SendMessageBatch call is the slowest.
func TestFIFOBodyOrderWithinAConversation(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{fifo: true})
	body, want := conversationBody("order", 35) // 4 batches
	first := "msg#wamid-order-00"
	s.queue.setFault(func(ctx context.Context, in *sqs.SendMessageBatchInput) ([]string, error) {
		if keyOf(in.Entries[0].MessageAttributes) == first {
			// The first batch is slow: concurrent sends would let the
			// later ones overtake it.
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return nil, nil
	})
	if r := s.post(body); r.code != http.StatusOK || r.summary.Queued != 35 {
		t.Fatalf("status %d %+v", r.code, r.summary)
	}
	got := s.drainGroups()
	for g, keys := range want {
		if !slices.Equal(got[g], keys) {
			t.Errorf("conversation %s left the queue as %v, want the body's order %v", g, got[g], keys)
		}
	}
}

// FIFO order requirement: once an event of a conversation is not enqueued,
// the conversation's later events in the body are not sent either (503);
// Meta's retry then enqueues the rest, and the queue holds the conversation in
// the body's order.
func TestFIFOUnsentEventHoldsBackItsConversation(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{fifo: true})
	body, want := conversationBody("hold", 24)
	// Customer 0's last event in the first batch (SQS takes a batch's
	// entries independently: fifo.go says why a refused entry is never
	// followed by its conversation within its own batch in practice).
	refused := "msg#wamid-hold-08"
	s.queue.setFault(func(context.Context, *sqs.SendMessageBatchInput) ([]string, error) { return []string{refused}, nil })
	r := s.post(body)
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("status %d %+v, want 503", r.code, r.summary)
	}
	// Customer 0: events 0..6 queued, 8 refused, 10..22 held back (7 more);
	// customer 1: all 12 queued.
	if r.summary.Queued != 16 || r.summary.Failed != 8 {
		t.Errorf("summary %+v, want 16 queued and 8 failed", r.summary)
	}
	if st := s.state("msg#wamid-hold-10"); st != "" {
		t.Errorf("held-back event left in state %q, want released", st)
	}
	s.queue.setFault(nil)
	if r := s.post(body); r.code != http.StatusOK || r.summary.Queued != 8 || r.summary.Duplicates != 16 {
		t.Fatalf("Meta's retry: status %d %+v, want 8 queued, 16 duplicates", r.code, r.summary)
	}
	got := s.drainGroups()
	for g, keys := range want {
		if !slices.Equal(got[g], keys) {
			t.Errorf("conversation %s left the queue as %v, want the body's order %v", g, got[g], keys)
		}
	}
}
