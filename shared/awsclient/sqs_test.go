package awsclient_test

// Behaviours of SQS that wahook relies on, pinned against ElasticMQ.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/shared/awsclient"
)

func receiveCount(m sqstypes.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

// A received message is invisible for its visibility timeout, then comes back
// with ApproximateReceiveCount incremented.
func TestSQSVisibilityExpiry(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "vis", map[string]string{"VisibilityTimeout": "1"})
	id := send(t, c, url, "hello")

	msgs := receive(t, c, url, 0, -1)
	if len(msgs) != 1 || *msgs[0].MessageId != id || receiveCount(msgs[0]) != 1 {
		t.Fatalf("first receive: %+v", msgs)
	}
	received := time.Now()
	if again := receive(t, c, url, 0, -1); len(again) != 0 {
		t.Fatalf("message visible during its visibility timeout: %+v", again)
	}
	msgs = receiveUntil(t, c, url, -1, 5*time.Second)
	back := time.Since(received)
	if len(msgs) != 1 || *msgs[0].MessageId != id {
		t.Fatalf("message did not come back after the visibility timeout: %+v", msgs)
	}
	if back < 900*time.Millisecond {
		t.Errorf("message back after %v, before the 1 s visibility timeout", back)
	}
	if got := receiveCount(msgs[0]); got != 2 {
		t.Errorf("ApproximateReceiveCount = %d, want 2", got)
	}
	t.Logf("visible again %v after receive (VisibilityTimeout 1 s)", back.Round(time.Millisecond))
}

// ChangeMessageVisibility extends the timeout (heartbeat); 0 makes the message
// visible at once. A stale receipt handle (from before a re-receive) is probed.
func TestSQSChangeMessageVisibility(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "chvis", map[string]string{"VisibilityTimeout": "1"})
	id := send(t, c, url, "extend me")

	msgs := receive(t, c, url, 0, -1)
	if len(msgs) != 1 {
		t.Fatalf("receive: %+v", msgs)
	}
	rh := msgs[0].ReceiptHandle

	// Heartbeat: every 400 ms push the visibility to 1 s from now, for 2.5 s.
	// The message must stay invisible throughout (the 1 s timeout expires
	// repeatedly if the extensions do not work).
	stop := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(stop) {
		if _, err := c.SQS.ChangeMessageVisibility(t.Context(), &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &url, ReceiptHandle: rh, VisibilityTimeout: 1,
		}); err != nil {
			t.Fatalf("ChangeMessageVisibility: %v", err)
		}
		if got := receive(t, c, url, 0, -1); len(got) != 0 {
			t.Fatalf("message reappeared while its visibility was being extended")
		}
		time.Sleep(400 * time.Millisecond)
	}

	// Visibility 0: visible at once.
	if _, err := c.SQS.ChangeMessageVisibility(t.Context(), &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &url, ReceiptHandle: rh, VisibilityTimeout: 0,
	}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	msgs = receive(t, c, url, 0, 1)
	if len(msgs) != 1 || *msgs[0].MessageId != id {
		t.Fatalf("after visibility 0, an immediate receive got %+v", msgs)
	}
	t.Logf("visible %v after ChangeMessageVisibility(0)", time.Since(began).Round(time.Millisecond))
	if got := receiveCount(msgs[0]); got != 2 {
		t.Errorf("ApproximateReceiveCount = %d, want 2", got)
	}
	if *msgs[0].ReceiptHandle == *rh {
		t.Errorf("a new receive returned the same receipt handle")
	}

	// The first receive's handle is now stale. Record what ElasticMQ does
	// with it (real SQS: ChangeMessageVisibility may fail, DeleteMessage may
	// succeed without deleting): the product must not depend on either.
	_, errCV := c.SQS.ChangeMessageVisibility(t.Context(), &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &url, ReceiptHandle: rh, VisibilityTimeout: 0,
	})
	t.Logf("ChangeMessageVisibility with a stale receipt handle: err = %v", errCode(errCV))
	_, errDel := c.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: rh})
	t.Logf("DeleteMessage with a stale receipt handle: err = %v", errCode(errDel))
	n := approxMessages(t, c, url)
	t.Logf("after the stale delete the queue holds %d message(s) (visible+in flight)", n)
}

func approxMessages(t *testing.T, c *awsclient.Clients, url string) int {
	t.Helper()
	out, err := c.SQS.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}

func errCode(err error) string {
	if err == nil {
		return "<nil>"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%T code=%s msg=%q", ae, ae.ErrorCode(), ae.ErrorMessage())
	}
	return err.Error()
}

// A long poll returns as soon as a message is sent, and an empty long poll
// lasts WaitTimeSeconds.
func TestSQSLongPoll(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "longpoll", nil)

	began := time.Now()
	if msgs := receive(t, c, url, 1, -1); len(msgs) != 0 {
		t.Fatalf("empty queue returned %+v", msgs)
	}
	empty := time.Since(began)
	if empty < 900*time.Millisecond || empty > 3*time.Second {
		t.Errorf("empty long poll of 1 s took %v", empty)
	}

	type result struct {
		msgs []sqstypes.Message
		at   time.Time
		err  error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: &url, WaitTimeSeconds: 10, MaxNumberOfMessages: 10,
		})
		r := result{at: time.Now(), err: err}
		if out != nil {
			r.msgs = out.Messages
		}
		done <- r
	}()
	time.Sleep(300 * time.Millisecond) // let the poll start; the latency below is what is measured
	sent := time.Now()
	send(t, c, url, "wake up")
	select {
	case r := <-done:
		if r.err != nil || len(r.msgs) != 1 {
			t.Fatalf("long poll: %v %+v", r.err, r.msgs)
		}
		lat := r.at.Sub(sent)
		if lat > 2*time.Second {
			t.Errorf("long poll returned %v after the send", lat)
		}
		t.Logf("empty 1 s long poll took %v; 10 s long poll returned %v after the send", empty.Round(time.Millisecond), lat.Round(time.Millisecond))
	case <-time.After(12 * time.Second):
		t.Fatal("long poll did not return")
	}
}

// DeleteMessageBatch deletes exactly the entries given, with per-entry results.
func TestSQSDeleteMessageBatch(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "delbatch", map[string]string{"VisibilityTimeout": "1"})
	for i := range 5 {
		send(t, c, url, fmt.Sprintf("m%d", i))
	}
	var got []sqstypes.Message
	eventually(t, 5*time.Second, "receive 5 messages", func() bool {
		got = append(got, receive(t, c, url, 0, -1)...)
		return len(got) >= 5
	})
	if len(got) != 5 {
		t.Fatalf("received %d messages, want 5", len(got))
	}
	slices.SortFunc(got, func(a, b sqstypes.Message) int { return strings.Compare(*a.Body, *b.Body) })

	// Delete m0, m2, m4, plus one entry with a bogus receipt handle.
	entries := []sqstypes.DeleteMessageBatchRequestEntry{
		{Id: aws.String("e0"), ReceiptHandle: got[0].ReceiptHandle},
		{Id: aws.String("e2"), ReceiptHandle: got[2].ReceiptHandle},
		{Id: aws.String("bogus"), ReceiptHandle: aws.String("not-a-receipt-handle")},
		{Id: aws.String("e4"), ReceiptHandle: got[4].ReceiptHandle},
	}
	out, err := c.SQS.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
	if err != nil {
		t.Fatalf("DeleteMessageBatch: %v", err)
	}
	var ok []string
	for _, s := range out.Successful {
		ok = append(ok, *s.Id)
	}
	slices.Sort(ok)
	if !slices.Equal(ok, []string{"e0", "e2", "e4"}) {
		t.Errorf("Successful = %v, want [e0 e2 e4]", ok)
	}
	if len(out.Failed) != 1 || *out.Failed[0].Id != "bogus" {
		t.Fatalf("Failed = %+v, want the bogus entry", out.Failed)
	}
	f := out.Failed[0]
	t.Logf("failed entry: code=%s senderFault=%v message=%q", aws.ToString(f.Code), f.SenderFault, aws.ToString(f.Message))

	// After the visibility timeout exactly m1 and m3 come back.
	var back []string
	eventually(t, 6*time.Second, "m1 and m3 back", func() bool {
		for _, m := range receive(t, c, url, 1, 5) {
			back = append(back, *m.Body)
		}
		return len(back) >= 2
	})
	slices.Sort(back)
	if !slices.Equal(back, []string{"m1", "m3"}) {
		t.Errorf("messages left after the batch delete: %v, want [m1 m3]", back)
	}
}

// After maxReceiveCount receives, the next receive moves the message to the DLQ.
func TestSQSRedriveToDLQ(t *testing.T) {
	t.Parallel()
	c := clients(t)
	dlq := newQueue(t, c, "dlq", nil)
	const maxReceive = 2
	url := newQueue(t, c, "redrive", map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, queueArn(t, c, dlq), maxReceive),
	})
	id := send(t, c, url, "poison")

	for i := 1; i <= maxReceive; i++ {
		msgs := receiveUntil(t, c, url, -1, 5*time.Second)
		if len(msgs) != 1 || *msgs[0].MessageId != id {
			t.Fatalf("receive %d: %+v", i, msgs)
		}
		if got := receiveCount(msgs[0]); got != i {
			t.Errorf("receive %d: ApproximateReceiveCount = %d", i, got)
		}
	}
	// The next receive attempt (after the timeout) finds it gone: in the DLQ.
	if msgs := receiveUntil(t, c, url, -1, 2500*time.Millisecond); len(msgs) != 0 {
		t.Fatalf("message received a %d. time (count %d), past maxReceiveCount %d", maxReceive+1, receiveCount(msgs[0]), maxReceive)
	}
	msgs := receiveUntil(t, c, dlq, -1, 5*time.Second)
	if len(msgs) != 1 || *msgs[0].MessageId != id || *msgs[0].Body != "poison" {
		t.Fatalf("DLQ: %+v", msgs)
	}
	t.Logf("in DLQ: same MessageId=%v, ApproximateReceiveCount there=%d", *msgs[0].MessageId == id, receiveCount(msgs[0]))
}

// FIFO: MessageDeduplicationId dedup, per-group order, and a group is locked
// while one of its messages is in flight.
func TestSQSFIFO(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "fifo", map[string]string{
		"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "1",
	})
	sendFIFO := func(group, dedup, body string) *sqs.SendMessageOutput {
		out, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{
			QueueUrl: &url, MessageBody: &body, MessageGroupId: &group, MessageDeduplicationId: &dedup,
		})
		if err != nil {
			t.Fatalf("SendMessage FIFO: %v", err)
		}
		return out
	}
	first := sendFIFO("g0", "dup", "original")
	second := sendFIFO("g0", "dup", "duplicate")
	t.Logf("dedup: second send returned MessageId same=%v, SequenceNumber %s / %s",
		*first.MessageId == *second.MessageId, aws.ToString(first.SequenceNumber), aws.ToString(second.SequenceNumber))
	for i := range 5 {
		sendFIFO("gA", "a"+strconv.Itoa(i), "A"+strconv.Itoa(i))
		sendFIFO("gB", "b"+strconv.Itoa(i), "B"+strconv.Itoa(i))
	}

	// Group lock: receive one message of gA, keep it in flight; later gA
	// messages must not be delivered until it is deleted.
	var order = map[string][]string{}
	var seen = map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 11 && time.Now().Before(deadline) {
		msgs := receive(t, c, url, 1, 5)
		groups := map[string]int{}
		for _, m := range msgs {
			g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
			groups[g]++
			order[g] = append(order[g], *m.Body)
			seen[*m.Body]++
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range msgs {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(entries) > 0 {
			out, err := c.SQS.DeleteMessageBatch(t.Context(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
			if err != nil || len(out.Failed) > 0 {
				t.Fatalf("delete: %v %+v", err, out)
			}
		}
	}
	if seen["duplicate"] != 0 || seen["original"] != 1 {
		t.Errorf("dedup: seen %v", seen)
	}
	for _, g := range []string{"gA", "gB"} {
		want := []string{g[1:] + "0", g[1:] + "1", g[1:] + "2", g[1:] + "3", g[1:] + "4"}
		if !slices.Equal(order[g], want) {
			t.Errorf("group %s order %v, want %v", g, order[g], want)
		}
	}
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%s received %d times", b, n)
		}
	}

	// In-flight lock: one gA message received (not deleted) blocks the next.
	sendFIFO("gC", "c0", "C0")
	sendFIFO("gC", "c1", "C1")
	out, err := c.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1, VisibilityTimeout: 5})
	if err != nil || len(out.Messages) != 1 || *out.Messages[0].Body != "C0" {
		t.Fatalf("receive C0: %v %+v", err, out)
	}
	if more := receive(t, c, url, 1, 5); len(more) != 0 {
		t.Errorf("group gC delivered %q while C0 was in flight", *more[0].Body)
	}
}

// MessageAttributes and system attributes round-trip.
func TestSQSMessageAttributes(t *testing.T) {
	t.Parallel()
	c := clients(t)
	url := newQueue(t, c, "attrs", nil)
	body := `{"v":1,"key":"msg#wamid.X"}`
	_, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{
		QueueUrl: &url, MessageBody: &body,
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"key":  {DataType: aws.String("String"), StringValue: aws.String("msg#wamid.HBgL=")},
			"kind": {DataType: aws.String("String"), StringValue: aws.String("message")},
			"n":    {DataType: aws.String("Number"), StringValue: aws.String("42")},
			"bin":  {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
			"uni":  {DataType: aws.String("String"), StringValue: aws.String("héllo ✓ 😀")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveUntil(t, c, url, -1, 3*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("receive: %+v", msgs)
	}
	m := msgs[0]
	if *m.Body != body {
		t.Errorf("body %q", *m.Body)
	}
	a := m.MessageAttributes
	check := func(name, typ, want string) {
		t.Helper()
		v, ok := a[name]
		if !ok || aws.ToString(v.DataType) != typ || aws.ToString(v.StringValue) != want {
			t.Errorf("attribute %s = %+v, want %s %q", name, v, typ, want)
		}
	}
	check("key", "String", "msg#wamid.HBgL=")
	check("kind", "String", "message")
	check("n", "Number", "42")
	check("uni", "String", "héllo ✓ 😀")
	if v := a["bin"]; aws.ToString(v.DataType) != "Binary" || string(v.BinaryValue) != string([]byte{0, 1, 2, 255}) {
		t.Errorf("binary attribute = %+v", v)
	}
	if m.MD5OfMessageAttributes == nil {
		t.Errorf("no MD5OfMessageAttributes")
	}
	for _, k := range []string{"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"} {
		if m.Attributes[k] == "" {
			t.Errorf("system attribute %s missing (got %v)", k, m.Attributes)
		}
	}
}

// 1000 messages sent with SendMessageBatch, received by 10 concurrent
// receivers: every message arrives within one visibility timeout, none twice.
// Bodies are 16 KiB so each ReceiveMessage response is ~160 KiB (the large
// responses of the io.WriterTo issue). Run with the workaround on (what
// awsclient builds) and off, counting HTTP attempts to see whether the SDK
// retried silently.
//
// With the workaround the test is strict. Without it the upstream bug
// (aws/aws-sdk-go-v2 #2737, #1825) does reproduce against ElasticMQ now and
// then under load — net/http closes the connection mid-read ("use of closed
// network connection"), the SDK retries, and that attempt's messages stay
// hidden for a visibility timeout — so that run only reports what it saw.
func TestSQS1000Messages(t *testing.T) {
	for _, expose := range []bool{false, true} {
		name := "workaround"
		if expose {
			name = "no-workaround"
		}
		t.Run(name, func(t *testing.T) { run1000(t, expose) })
	}
}

func run1000(t *testing.T, exposeWriterTo bool) {
	const (
		total      = 1000
		receivers  = 10
		visibility = 20 // seconds: the window in which all must arrive
		bodySize   = 16 << 10
	)
	counter := &countingHTTP{}
	o := awsclient.WithTestHTTP(emu.Options(), exposeWriterTo, func(next aws.HTTPClient) aws.HTTPClient {
		counter.next = next
		return counter
	})
	c, err := awsclient.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	url := newQueue(t, c, "thousand", map[string]string{"VisibilityTimeout": strconv.Itoa(visibility)})

	pad := strings.Repeat("x", bodySize)
	began := time.Now()
	var wg sync.WaitGroup
	sendErrs := make(chan error, total/10)
	for b := range total / 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]sqstypes.SendMessageBatchRequestEntry, 10)
			for i := range entries {
				n := b*10 + i
				entries[i] = sqstypes.SendMessageBatchRequestEntry{
					Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf("%04d:%s", n, pad)),
				}
			}
			out, err := c.SQS.SendMessageBatch(t.Context(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
			if err == nil && len(out.Failed) > 0 {
				err = fmt.Errorf("batch %d: %d failed: %s", b, len(out.Failed), aws.ToString(out.Failed[0].Message))
			}
			if err != nil {
				sendErrs <- err
			}
		}()
	}
	wg.Wait()
	close(sendErrs)
	for err := range sendErrs {
		t.Fatal(err)
	}
	sentIn := time.Since(began)
	sendAttempts := counter.attempts.Load()

	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		calls    int64
		recvErrs []error
	)
	recvStart := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), visibility*time.Second)
	defer cancel()
	for range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if len(seen) >= total {
					mu.Unlock()
					return
				}
				calls++
				mu.Unlock()
				out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				})
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						recvErrs = append(recvErrs, err)
					}
				} else {
					for _, m := range out.Messages {
						seen[(*m.Body)[:4]]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	recvIn := time.Since(recvStart)

	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	recvAttempts := counter.attempts.Load() - sendAttempts
	t.Logf("sent %d x %d KiB in %v (%d HTTP attempts for %d batches); received %d distinct, %d duplicates in %v "+
		"with %d receivers: %d ReceiveMessage calls, %d HTTP attempts (%d silent retries), transport errors %d, body read errors %d, last error %v",
		total, bodySize>>10, sentIn.Round(time.Millisecond), sendAttempts, total/10,
		len(seen), dups, recvIn.Round(time.Millisecond), receivers, calls, recvAttempts, recvAttempts-calls,
		counter.doErrors.Load(), counter.bodyErrors.Load(), counter.lastErr.Load())
	for _, err := range recvErrs {
		t.Errorf("ReceiveMessage: %v", err)
	}
	if exposeWriterTo {
		if len(seen) != total {
			t.Logf("without the workaround %d of %d messages were hidden by a silently retried receive: the upstream bug", total-len(seen), total)
		}
		return
	}
	if len(seen) != total {
		t.Errorf("received %d distinct messages within the %d s visibility timeout, want %d (missing ones were received by a silently retried attempt, or lost)", len(seen), visibility, total)
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries within one visibility timeout", dups)
	}
}

// Error identity on ElasticMQ: the typed errors work with errors.As, but
// ErrorCode() is the fully qualified "com.amazonaws.sqs#QueueDoesNotExist"
// (ElasticMQ's X-Amzn-Query-Error header), unlike real SQS
// ("AWS.SimpleQueueService.NonExistentQueue"). Product code must match errors
// with errors.As on the typed errors, never on ErrorCode strings.
func TestSQSTypedErrors(t *testing.T) {
	t.Parallel()
	c := clients(t)
	bogus := emu.SQSEndpoint + "/" + "000000000000/" + "does-not-exist"
	_, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &bogus, MessageBody: aws.String("x")})
	var qdne *sqstypes.QueueDoesNotExist
	if !errors.As(err, &qdne) {
		t.Fatalf("SendMessage to a missing queue: %v, want *types.QueueDoesNotExist", err)
	}
	t.Logf("missing queue: %s", errCode(err))
	url := newQueue(t, c, "typed", nil)
	_, err = c.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: aws.String("nope")})
	var rhi *sqstypes.ReceiptHandleIsInvalid
	if !errors.As(err, &rhi) {
		t.Fatalf("DeleteMessage with a bogus handle: %v, want *types.ReceiptHandleIsInvalid", err)
	}
}
