package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/webhook"
)

// A dead letter is excused only when its event is done and SQS spent its
// receives where no process of the stack saw them; a copy of an event that
// is not done is reported, however it got there.
func TestDeadLettersSpentUnseen(t *testing.T) {
	s := NewStack(t, StackOptions{MaxReceiveCount: 3, MaxAttempts: 1})
	s.StartIngest(nil)
	w := s.StartWorker(WorkerOptions{Processors: 1})
	g := NewGen(1)
	p := g.Batches(g.Messages(1), 1)[0]
	ctx := t.Context()
	if _, err := s.Client().DeliverAll(ctx, [][]byte{p.JSON()}, 1); err != nil {
		t.Fatal(err)
	}
	keys := p.Keys()
	s.AwaitSettled(keys, time.Minute)
	w.Kill() // nothing of the stack receives from here on

	// Copies of the done event and of one never accepted, received straight
	// from SQS, around the injectors, until SQS redrives both.
	sqsc := s.Suite.Clients.SQS
	for _, k := range []string{keys[0], webhook.MessageKey("never-accepted")} {
		body, err := envelope.Envelope{V: envelope.Version, Key: k, Kind: webhook.KindMessage, ReceivedAt: time.Now(),
			WAMID: strings.TrimPrefix(k, "msg#"), Payload: []byte(`{}`)}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.QueueURL, MessageBody: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, time.Minute, "both copies redriven", func(ctx context.Context) error {
		out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &s.QueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return err
		}
		for _, m := range out.Messages { // visible again at once (a 0 in the receive is not sent)
			if _, err := sqsc.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &s.QueueURL,
				ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
				return err
			}
		}
		_, dlq, err := s.Depth(ctx)
		if err != nil {
			return err
		}
		if dlq.Total() != 2 {
			return fmt.Errorf("DLQ %s", dlq)
		}
		return nil
	})

	tally, errs := s.invariants(ctx, Expect{Keys: keys})
	if tally.SpentUnseen != 1 {
		t.Errorf("%d dead letters excused, want 1 (the done event's): %s", tally.SpentUnseen, tally)
	}
	var listed bool
	for _, err := range errs {
		switch {
		case strings.Contains(err.Error(), keys[0]):
			t.Errorf("the done event's copy reported: %v", err)
		case strings.Contains(err.Error(), "DLQ holds 2 messages") && strings.Contains(err.Error(), "want 0") &&
			strings.Contains(err.Error(), "never-accepted"):
			listed = true
		}
	}
	if !listed {
		t.Errorf("the never-accepted event's copy not reported: %v", errs)
	}
}
