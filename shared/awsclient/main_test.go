package awsclient_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

func clients(t *testing.T) *awsclient.Clients {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newQueue creates a queue with a unique name (".fifo" appended for FIFO
// queues) and deletes it at the end of the test.
func newQueue(t *testing.T, c *awsclient.Clients, prefix string, attrs map[string]string) string {
	t.Helper()
	name := awstest.UniqueName(prefix)
	if attrs[string(sqstypes.QueueAttributeNameFifoQueue)] == "true" {
		name += ".fifo"
	}
	out, err := c.SQS.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	url := *out.QueueUrl
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url})
	})
	return url
}

func queueArn(t *testing.T, c *awsclient.Clients, url string) string {
	t.Helper()
	out, err := c.SQS.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

// receive does one ReceiveMessage call (up to 10 messages, all attributes).
func receive(t *testing.T, c *awsclient.Clients, url string, wait, visibility int32) []sqstypes.Message {
	t.Helper()
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    &url,
		MaxNumberOfMessages:         10,
		WaitTimeSeconds:             wait,
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	}
	if visibility >= 0 {
		in.VisibilityTimeout = visibility
	}
	out, err := c.SQS.ReceiveMessage(t.Context(), in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// receiveUntil long-polls (1 s at a time) until at least one message arrives
// or the deadline passes.
func receiveUntil(t *testing.T, c *awsclient.Clients, url string, visibility int32, within time.Duration) []sqstypes.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if msgs := receive(t, c, url, 1, visibility); len(msgs) > 0 {
			return msgs
		}
	}
	return nil
}

func send(t *testing.T, c *awsclient.Clients, url, body string) string {
	t.Helper()
	out, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return *out.MessageId
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countingHTTP counts HTTP attempts and transport/body errors.
type countingHTTP struct {
	next       aws.HTTPClient
	attempts   atomic.Int64
	doErrors   atomic.Int64
	bodyErrors atomic.Int64
	lastErr    atomic.Value
}

func (c *countingHTTP) Do(req *http.Request) (*http.Response, error) {
	c.attempts.Add(1)
	resp, err := c.next.Do(req)
	if err != nil {
		c.doErrors.Add(1)
		c.lastErr.Store(err.Error())
		return resp, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	c *countingHTTP
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.c.bodyErrors.Add(1)
		b.c.lastErr.Store(err.Error())
	}
	return n, err
}
