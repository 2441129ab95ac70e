package pipeline_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/ledger"
)

// deadLetters receives everything in s's DLQ.
func (s *stack) deadLetters() []sqstypes.Message {
	s.t.Helper()
	var all []sqstypes.Message
	for {
		out, err := s.clients.SQS.ReceiveMessage(s.t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			s.t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
	}
}

// TestRejectedEventsAreRecorded: nothing accepted vanishes. An object without
// an id and an event larger than the queue's MaximumMessageSize each become a
// `rejected` ledger item with the reason and a DLQ copy of the raw event;
// wahook_ingest_rejected_total counts them by reason; a duplicate delivery of
// the same webhook records nothing twice.
func TestRejectedEventsAreRecorded(t *testing.T) {
	t.Parallel()
	s := newStack(t, options{})
	noID := `{"from":"15551234567","text":{"body":"no id"}}`
	big := fmt.Sprintf(`{"id":"wamid-rej-big","from":"1555","type":"text","text":{"body":%q}}`, strings.Repeat("x", 300*1024))
	small := `{"id":"wamid-rej-small","from":"1555","type":"text","text":{"body":"hi"}}`
	body := `{"entry":[{"changes":[{"value":{"messages":[` + small + `,` + noID + `,` + big + `]}}]}]}`
	if r := s.post(body); r.code != http.StatusOK || r.summary.Rejected != 2 || r.summary.Queued != 1 || r.summary.Failed != 0 {
		t.Fatalf("first post: %d %+v, want 200 with 1 queued and 2 rejected", r.code, r.summary)
	}
	// Meta delivers it again: the keyed events are duplicates (the big one is
	// known as rejected), the one without an id is found by its hash.
	if r := s.post(body); r.code != http.StatusOK || r.summary.Duplicates != 2 || r.summary.Rejected != 1 || r.summary.Failed != 0 {
		t.Fatalf("second post: %d %+v, want 200 with 2 duplicates and 1 rejected", r.code, r.summary)
	}
	dl := s.deadLetters()
	if len(dl) != 2 {
		t.Fatalf("DLQ holds %d messages, want 2 (one per rejected event, not per delivery)", len(dl))
	}
	noIDKey := pipeline.RejectedKey([]byte(noID))
	var gotKeys []string
	for _, m := range dl {
		info := deadletter.Parse(m.MessageAttributes)
		if info.Reason != deadletter.ReasonRejected || info.Kind != "message" {
			t.Errorf("dead letter %+v, want reason rejected, kind message", info)
		}
		gotKeys = append(gotKeys, info.Key)
		switch info.Key {
		case noIDKey:
			if aws.ToString(m.Body) != noID || !strings.HasPrefix(info.Error, "no-id") {
				t.Errorf("no-id copy: body %q error %q, want the raw event and a no-id reason", aws.ToString(m.Body), info.Error)
			}
		case "msg#wamid-rej-big":
			if aws.ToString(m.Body) == big {
				t.Errorf("too-large copy has the whole %d-byte event, over the DLQ's limit", len(big))
			}
			if !strings.HasPrefix(aws.ToString(m.Body), big[:1000]) || m.MessageAttributes[deadletter.AttrTruncated].StringValue == nil ||
				!strings.Contains(info.Error, "MaximumMessageSize 262144") {
				t.Errorf("too-large copy: %d bytes, truncated %v, error %q", len(aws.ToString(m.Body)),
					m.MessageAttributes[deadletter.AttrTruncated].StringValue, info.Error)
			}
		}
	}
	slices.Sort(gotKeys)
	if want := []string{"msg#wamid-rej-big", noIDKey}; !slices.Equal(gotKeys, want) {
		t.Errorf("dead letters for %v, want %v", gotKeys, want)
	}
	for _, k := range []string{noIDKey, "msg#wamid-rej-big"} {
		it, err := s.store.Get(t.Context(), k)
		if err != nil || it.State != ledger.StateRejected || it.Error == "" {
			t.Errorf("%s: %+v %v, want rejected with a reason", k, it, err)
		}
	}
	if got := keys(s.drain()); !slices.Equal(got, []string{"msg#wamid-rej-small"}) {
		t.Errorf("queue holds %v, want only the small event once", got)
	}
	for reason, want := range map[string]float64{metrics.RejectNoID: 1, metrics.RejectTooLarge: 1} {
		if got := s.metric("wahook_ingest_rejected_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("rejected_total{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}
