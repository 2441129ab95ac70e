package awstest_test

// What each SQS emulator does where AWS's documentation says otherwise (or
// where the product depends on it): the measurements behind the table in
// localstack/README.md. Each subtest asserts the behaviour the table states
// for that emulator, so a table that goes stale fails here.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/awstest"
)

// sqsBehaviour is what one emulator does, as the README's table says.
type sqsBehaviour struct {
	// abandonedPollKept: a long poll whose client went away stays open on the
	// server and takes (hides) a message sent afterwards — AWS's behaviour.
	abandonedPollKept bool
	// deliveriesBeforeRedrive with maxReceiveCount 2, and the
	// ApproximateReceiveCount the copy in the dead-letter queue shows.
	deliveriesBeforeRedrive int
	dlqReceiveCount         int
	// fifoSequenceNumberZero: SequenceNumber is "0" (AWS: a large, increasing number).
	fifoSequenceNumberZero bool
	// fifoGroupReleasedInFlight: a FIFO group's later messages, made visible
	// again (ChangeMessageVisibility 0) while an earlier message of the group
	// is still in flight, are handed out at once. AWS: "in-flight messages
	// block the delivery of available messages within the same message group".
	fifoGroupReleasedInFlight bool
	// sizes: see maxSize. AWS: MaximumMessageSize 1 KiB..1 MiB, enforced.
	sizes sizes
	// moveTask: StartMessageMoveTask moves the dead-letter queue's messages
	// back to their source.
	moveTask bool
}

var sqsBehaviours = map[string]sqsBehaviour{
	awstest.SQSElasticMQ: {
		abandonedPollKept:       true,
		deliveriesBeforeRedrive: 2, dlqReceiveCount: 3,
		fifoSequenceNumberZero:    true,
		fifoGroupReleasedInFlight: false,
		sizes:                     sizes{defaultMax: "", enforces1KiBMax: false, over256KiB: true, mib: true, overMiB: false},
		moveTask:                  true,
	},
	awstest.SQSLocalStack: {
		abandonedPollKept:       true,
		deliveriesBeforeRedrive: 2, dlqReceiveCount: 3,
		fifoSequenceNumberZero:    false,
		fifoGroupReleasedInFlight: true,
		sizes:                     sizes{defaultMax: "1048576", enforces1KiBMax: true, over256KiB: true, mib: true, overMiB: false},
		moveTask:                  true,
	},
}

// TestSQSEmulatorBehaviour starts each SQS emulator and measures it.
func TestSQSEmulatorBehaviour(t *testing.T) {
	if _, ok := awstest.FromEnv(); ok {
		t.Skip("endpoints from the environment")
	}
	for _, impl := range []string{awstest.SQSElasticMQ, awstest.SQSLocalStack} {
		t.Run(impl, func(t *testing.T) {
			t.Parallel()
			e, err := awstest.StartSQS(t.Context(), impl)
			if err != nil {
				if ci, _ := strconv.ParseBool(os.Getenv("CI")); !ci && strings.Contains(err.Error(), "not installed") {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Stop() })
			c, err := e.Clients(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := sqsBehaviours[impl]
			m := &sqsMeasure{t: t, c: c.SQS}
			t.Run("AbandonedLongPoll", func(t *testing.T) {
				m.t = t
				if got := m.abandonedPollKept(); got != want.abandonedPollKept {
					t.Errorf("abandoned long poll kept open: %v, want %v", got, want.abandonedPollKept)
				}
			})
			t.Run("Redrive", func(t *testing.T) {
				m.t = t
				n, dlqCount := m.redrive()
				if n != want.deliveriesBeforeRedrive || dlqCount != want.dlqReceiveCount {
					t.Errorf("maxReceiveCount 2: %d deliveries, DLQ copy's receive count %d; want %d, %d",
						n, dlqCount, want.deliveriesBeforeRedrive, want.dlqReceiveCount)
				}
			})
			t.Run("FIFO", func(t *testing.T) {
				m.t = t
				if zero := m.fifo(); zero != want.fifoSequenceNumberZero {
					t.Errorf("SequenceNumber \"0\": %v, want %v", zero, want.fifoSequenceNumberZero)
				}
			})
			t.Run("FIFOGroupLockedWhileInFlight", func(t *testing.T) {
				m.t = t
				if got := m.fifoGroupReleasedInFlight(); got != want.fifoGroupReleasedInFlight {
					t.Errorf("a group's later messages handed out while an earlier one is in flight: %v, want %v",
						got, want.fifoGroupReleasedInFlight)
				}
			})
			t.Run("MaximumMessageSize", func(t *testing.T) {
				m.t = t
				if got := m.maxSize(); got != want.sizes {
					t.Errorf("sizes %+v, want %+v", got, want.sizes)
				}
			})
			t.Run("StartMessageMoveTask", func(t *testing.T) {
				m.t = t
				if got := m.moveTask(); got != want.moveTask {
					t.Errorf("StartMessageMoveTask moves messages back: %v, want %v", got, want.moveTask)
				}
			})
		})
	}
}

// abandonAfter is how long a long poll runs before the test abandons it.
const abandonAfter = 5 * time.Second

type sqsMeasure struct {
	t *testing.T
	c *sqs.Client
}

func (m *sqsMeasure) queue(prefix string, attrs map[string]string) string {
	m.t.Helper()
	name := awstest.UniqueName(prefix)
	if attrs[string(sqstypes.QueueAttributeNameFifoQueue)] == "true" {
		name += ".fifo"
	}
	out, err := m.c.CreateQueue(m.t.Context(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		m.t.Fatalf("create queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func (m *sqsMeasure) arn(url string) string {
	m.t.Helper()
	out, err := m.c.GetQueueAttributes(m.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		m.t.Fatal(err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

func (m *sqsMeasure) send(url, body string) {
	m.t.Helper()
	if _, err := m.c.SendMessage(m.t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
		m.t.Fatal(err)
	}
}

func (m *sqsMeasure) receive(url string, wait int32) []sqstypes.Message {
	m.t.Helper()
	out, err := m.c.ReceiveMessage(m.t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return out.Messages
}

func (m *sqsMeasure) notVisible(url string) int {
	m.t.Helper()
	out, err := m.c.GetQueueAttributes(m.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		m.t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return n
}

// abandonedPollKept opens a 20 s long poll, abandons it (the client cancels;
// the connection closes) once the server has had abandonAfter to take it up,
// then sends messages one at a time and receives each with a fresh poll. An
// emulator that drops the poll with its connection delivers every one; one
// that keeps it (as AWS does) hides a message in it: sent, never received,
// in flight.
func (m *sqsMeasure) abandonedPollKept() bool {
	url := m.queue("abandoned", map[string]string{"VisibilityTimeout": "60"})
	ctx, cancel := context.WithCancel(m.t.Context())
	written := make(chan struct{})
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(written) }}
	polled := make(chan error, 1)
	go func() {
		_, err := m.c.ReceiveMessage(httptrace.WithClientTrace(ctx, trace), &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 1, WaitTimeSeconds: 20})
		polled <- err
	}()
	<-written
	// No server tells when it has taken a request up: give it time to.
	time.Sleep(abandonAfter)
	cancel()
	if err := <-polled; !errors.Is(err, context.Canceled) {
		m.t.Fatalf("abandoned receive: %v, want cancelled", err)
	}
	// While the abandoned poll could still be open (20 s), a message sent is
	// either received by the next poll or swallowed.
	deadline := time.Now().Add(12 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		m.send(url, fmt.Sprintf("m%d", i))
		got := m.receive(url, 1)
		if len(got) == 0 {
			if n := m.notVisible(url); n != 1 {
				m.t.Fatalf("message %d neither received nor in flight (%d in flight)", i, n)
			}
			m.t.Logf("message %d (sent after the abandon) taken by the abandoned poll: in flight, received by nobody", i)
			return true
		}
		if _, err := m.c.DeleteMessage(m.t.Context(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			m.t.Fatal(err)
		}
	}
	m.t.Logf("every message sent while the abandoned poll could have been open was received")
	return false
}

// redrive counts deliveries of one message under maxReceiveCount 2 (each
// made visible again at once), and the receive count of its dead-letter copy.
func (m *sqsMeasure) redrive() (deliveries, dlqReceiveCount int) {
	dlq := m.queue("redrive-dlq", nil)
	url := m.queue("redrive", map[string]string{
		"VisibilityTimeout": "60",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":"2"}`, m.arn(dlq)),
	})
	m.send(url, "redriven")
	var counts []string
	for empty := 0; empty < 2; {
		got := m.receive(url, 1)
		if len(got) == 0 {
			empty++
			continue
		}
		deliveries++
		counts = append(counts, got[0].Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
		if _, err := m.c.ChangeMessageVisibility(m.t.Context(), &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &url, ReceiptHandle: got[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			m.t.Fatal(err)
		}
		if deliveries > 5 {
			m.t.Fatalf("delivered %d times under maxReceiveCount 2", deliveries)
		}
	}
	inDLQ := m.receive(dlq, 2)
	if len(inDLQ) != 1 {
		m.t.Fatalf("dead-letter queue holds %d messages, want 1", len(inDLQ))
	}
	dlqReceiveCount, _ = strconv.Atoi(inDLQ[0].Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	m.t.Logf("delivered %d times (receive counts %v), then in the DLQ with receive count %d", deliveries, counts, dlqReceiveCount)
	return deliveries, dlqReceiveCount
}

// fifo checks deduplication and a group blocked while a message is in
// flight (both as on AWS, or the test fails), and reports whether
// SequenceNumber is "0".
func (m *sqsMeasure) fifo() (sequenceZero bool) {
	url := m.queue("fifo", map[string]string{"FifoQueue": "true", "VisibilityTimeout": "60"})
	send := func(body, dedup string) *sqs.SendMessageOutput {
		out, err := m.c.SendMessage(m.t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body,
			MessageGroupId: aws.String("g"), MessageDeduplicationId: &dedup})
		if err != nil {
			m.t.Fatal(err)
		}
		return out
	}
	first := send("a", "d1")
	again := send("a-again", "d1")
	send("b", "d2")
	if aws.ToString(again.MessageId) != aws.ToString(first.MessageId) {
		m.t.Errorf("deduplicated send: MessageId %s, want the first's %s", aws.ToString(again.MessageId), aws.ToString(first.MessageId))
	}
	one, err := m.c.ReceiveMessage(m.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
	if err != nil || len(one.Messages) != 1 || aws.ToString(one.Messages[0].Body) != "a" {
		m.t.Fatalf("first receive: %+v, %v; want a", one, err)
	}
	if blocked := m.receive(url, 1); len(blocked) != 0 {
		m.t.Errorf("group g delivered %q while a is in flight", aws.ToString(blocked[0].Body))
	}
	if _, err := m.c.DeleteMessage(m.t.Context(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: one.Messages[0].ReceiptHandle}); err != nil {
		m.t.Fatal(err)
	}
	rest := m.receive(url, 1)
	if len(rest) != 1 || aws.ToString(rest[0].Body) != "b" {
		m.t.Errorf("after deleting a: %d messages, want b alone (the duplicate never delivered)", len(rest))
	}
	m.t.Logf("dedup and group order as on AWS; SequenceNumber %q", aws.ToString(first.SequenceNumber))
	return aws.ToString(first.SequenceNumber) == "0"
}

// fifoGroupReleasedInFlight receives three messages of one group in one
// receive, keeps the first in flight (ChangeMessageVisibility 30 s: a
// give-back, or a claim held by a killed worker's lease) and makes the later
// two visible at once (what the worker does with the messages it holds back
// behind an unfinished one). AWS keeps the group blocked until the first one
// is deleted or visible again; it reports whether the later ones are handed
// out meanwhile, and in which order.
func (m *sqsMeasure) fifoGroupReleasedInFlight() bool {
	url := m.queue("fifo-lock", map[string]string{"FifoQueue": "true", "VisibilityTimeout": "60"})
	for _, body := range []string{"g0", "g1", "g2"} {
		if _, err := m.c.SendMessage(m.t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(body)}); err != nil {
			m.t.Fatal(err)
		}
	}
	first := m.receive(url, 1)
	if len(first) != 3 || aws.ToString(first[0].Body) != "g0" {
		m.t.Fatalf("first receive: %d messages, want g0 g1 g2 in one receive", len(first))
	}
	for i, secs := range []int32{30, 0, 0} {
		if _, err := m.c.ChangeMessageVisibility(m.t.Context(), &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &url, ReceiptHandle: first[i].ReceiptHandle, VisibilityTimeout: secs}); err != nil {
			m.t.Fatal(err)
		}
	}
	got := m.receive(url, 1)
	if len(got) == 0 {
		m.t.Logf("g0 in flight, g1 and g2 visible again: nothing handed out (the group stays blocked, as on AWS)")
		return false
	}
	var bodies []string
	for _, msg := range got {
		bodies = append(bodies, aws.ToString(msg.Body))
	}
	m.t.Logf("g0 in flight, g1 and g2 visible again: %v handed out while g0 is in flight", bodies)
	return true
}

// sizes is what an emulator does with message sizes.
type sizes struct {
	defaultMax      string // a new queue's MaximumMessageSize attribute
	enforces1KiBMax bool   // a 1025-byte message refused by a queue whose MaximumMessageSize is 1024
	over256KiB      bool   // 256 KiB + 1 accepted by a queue created without MaximumMessageSize
	mib             bool   // 1 MiB accepted by a queue whose MaximumMessageSize is 1 MiB
	overMiB         bool   // 1 MiB + 1 accepted by that queue
}

// maxSize measures sizes; exactly 256 KiB must be accepted everywhere.
func (m *sqsMeasure) maxSize() sizes {
	var z sizes
	try := func(url string, n int) bool {
		body := strings.Repeat("x", n)
		_, err := m.c.SendMessage(m.t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
		return err == nil
	}
	url := m.queue("size", nil)
	out, err := m.c.GetQueueAttributes(m.t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameMaximumMessageSize}})
	if err != nil {
		m.t.Fatal(err)
	}
	z.defaultMax = out.Attributes[string(sqstypes.QueueAttributeNameMaximumMessageSize)]
	if !try(url, 256<<10) {
		m.t.Errorf("a 256 KiB message refused")
	}
	z.over256KiB = try(url, 256<<10+1)
	z.enforces1KiBMax = !try(m.queue("size-1kib", map[string]string{"MaximumMessageSize": "1024"}), 1025)
	big := m.queue("size-1mib", map[string]string{"MaximumMessageSize": strconv.Itoa(1 << 20)})
	z.mib, z.overMiB = try(big, 1<<20), try(big, 1<<20+1)
	m.t.Logf("sizes: %+v", z)
	return z
}

// moveTask dead-letters a message, then asks StartMessageMoveTask to move
// it back, and reports whether it reappears in its source queue.
func (m *sqsMeasure) moveTask() bool {
	dlq := m.queue("move-dlq", nil)
	url := m.queue("move", map[string]string{
		"VisibilityTimeout": "60",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":"%s","maxReceiveCount":"1"}`, m.arn(dlq)),
	})
	m.send(dlq, "to-move")
	_, err := m.c.StartMessageMoveTask(m.t.Context(), &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(m.arn(dlq)),
		DestinationArn: aws.String(m.arn(url))})
	if err != nil {
		m.t.Logf("StartMessageMoveTask: %v", err)
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := m.receive(url, 1); len(got) == 1 && aws.ToString(got[0].Body) == "to-move" {
			return true
		}
	}
	m.t.Logf("StartMessageMoveTask answered but the message did not reach the source queue within 10 s")
	return false
}
