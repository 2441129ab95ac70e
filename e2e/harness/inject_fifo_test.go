package harness_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
)

// The injector tells which FIFO groups SQS handed a message out of a second
// time, and from when (what TestFIFOConversationOrder's LocalStack rule reads).
func TestInjectorSeesFIFOHandOutsAgain(t *testing.T) {
	s := harness.Setup(t)
	ctx := t.Context()
	truth := s.Clients
	q, err := truth.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.UniqueName("e2e-again") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "VisibilityTimeout": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = truth.SQS.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})
	for _, m := range []struct{ body, group string }{{"a1", "a"}, {"a2", "a"}, {"b1", "b"}} {
		if _, err := truth.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(m.body),
			MessageGroupId: aws.String(m.group), MessageDeduplicationId: aws.String(m.body)}); err != nil {
			t.Fatal(err)
		}
	}
	in, via := throughInjector(t, s)
	receive := func() []sqstypes.Message {
		out, err := via.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameMessageGroupId, sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	again := func() map[string]time.Time {
		groups := map[string]time.Time{}
		in.HandedOutAgain(groups)
		return groups
	}

	var first []sqstypes.Message
	for deadline := time.Now().Add(10 * time.Second); len(first) < 3 && time.Now().Before(deadline); {
		first = append(first, receive()...)
	}
	if len(first) != 3 {
		t.Fatalf("first receives handed out %d messages, want 3", len(first))
	}
	if g := again(); len(g) != 0 {
		t.Fatalf("after first hand-outs only: %v, want no group", g)
	}
	// Group a's messages made visible again (both, so that every emulator
	// hands them out); b's deleted.
	before := time.Now()
	for _, m := range first {
		if aws.ToString(m.Body) == "b1" {
			if _, err := truth.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := truth.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl,
			ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if got := receive(); len(got) == 0 {
		t.Fatal("group a's messages made visible again were not handed out")
	}
	g := again()
	at, ok := g["a"]
	if len(g) != 1 || !ok || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("handed out again: %v, want group a alone, seen after %v", g, before)
	}
}

// The injector counts, per message, the hand-outs that passed through it and
// none that did not: what tells a dead letter whose receives a process saw
// from one whose receives SQS spent out of the processes' sight.
func TestInjectorCountsHandOutsPerMessage(t *testing.T) {
	s := harness.Setup(t)
	ctx := t.Context()
	truth := s.Clients
	q, err := truth.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.UniqueName("e2e-handouts")),
		Attributes: map[string]string{"VisibilityTimeout": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = truth.SQS.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})
	sent, err := truth.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("m")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(sent.MessageId)
	in, via := throughInjector(t, s)
	// Received twice through the injector, once around it; each time made
	// visible again at once.
	for i, c := range []*sqs.Client{via.SQS, truth.SQS, via.SQS} {
		var got []sqstypes.Message
		for deadline := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
			out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			got = out.Messages
		}
		if len(got) != 1 || aws.ToString(got[0].MessageId) != id {
			t.Fatalf("receive %d: %d messages, want the one sent (%s)", i+1, len(got), id)
		}
		if _, err := truth.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl,
			ReceiptHandle: got[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if n := in.HandedOut(id); n != 2 {
		t.Errorf("injector counts %d hand-outs of %s, want the 2 that passed through it", n, id)
	}
	if n := in.HandedOut("another"); n != 0 {
		t.Errorf("injector counts %d hand-outs of a message never received, want 0", n)
	}
}

// throughInjector starts an SQS injector in front of the suite's SQS and
// returns it with clients that talk through it.
func throughInjector(t *testing.T, s *harness.Suite) (*harness.Injector, *awsclient.Clients) {
	t.Helper()
	in, err := harness.NewInjector(harness.SQS, s.Backend.SQSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	o := s.Backend.Options()
	o.SQSEndpoint = in.URL()
	via, err := awsclient.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	return in, via
}
