package processor

// FIFO queues: a receive's messages run one message group at a time, in order.

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/logging"
)

// fifo reports whether the queue is a FIFO queue (SQS requires the suffix).
func (pr *processor) fifo() bool { return strings.HasSuffix(pr.opts.QueueURL, ".fifo") }

// handleBatch handles one receive's messages. On a standard queue they all run
// at once. On a FIFO queue the messages of one message group (a conversation)
// run one at a time in the order SQS delivered them, different groups at once:
// SQS keeps a group's order only until the messages reach the consumer.
func (pr *processor) handleBatch(stop, hard context.Context, msgs []sqstypes.Message, receivedAt time.Time) {
	var batch sync.WaitGroup
	if !pr.fifo() {
		for _, m := range msgs {
			batch.Go(func() { pr.handle(stop, hard, m, receivedAt) })
		}
		batch.Wait()
		return
	}
	// The messages' visibility runs from when SQS handed them out: at the
	// end of a long poll that waited, not at receivedAt, its start.
	returned := time.Now()
	for _, group := range messageGroups(msgs) {
		batch.Go(func() { pr.handleGroup(stop, hard, group, receivedAt, returned) })
	}
	batch.Wait()
}

// handleGroup handles one group's messages in order. Once one does not finish
// (given back, failed, refused, left for a backend reason, lease lost,
// shutdown), the later ones are released unhandled: SQS delivers no message of
// a group while one of its messages is invisible, so the unfinished one comes
// back before them and the group's order holds end to end.
func (pr *processor) handleGroup(stop, hard context.Context, group []sqstypes.Message, receivedAt, returned time.Time) {
	for i, m := range group {
		if i > 0 && time.Since(returned) > pr.opts.VisibilityTimeout/2 {
			// A waiting message's visibility runs from the receive, and
			// nothing extends it before its handler's first heartbeat, which
			// comes after its claim: past half of it, the claim could outlast
			// the visibility, the message be received elsewhere, and the
			// group's next message overtake it. SQS redelivers the rest in
			// order.
			pr.release(group[i:], "receive's visibility half spent")
			return
		}
		if !pr.handle(stop, hard, m, receivedAt) {
			pr.release(group[i+1:], "an earlier message of the group did not finish")
			return
		}
	}
}

// release makes a group's messages visible again at once, unhandled. The
// visibility change is best effort: a message it misses reappears after its
// visibility timeout, still behind the unfinished one.
func (pr *processor) release(msgs []sqstypes.Message, why string) {
	for _, m := range msgs {
		log := pr.log.With(logging.MessageID(aws.ToString(m.MessageId)), zap.String("group", messageGroup(m)))
		pr.result(ResultHeldBack)
		if n := receiveCount(m); pr.opts.MaxReceiveCount > 0 && n >= pr.opts.MaxReceiveCount {
			// Each hold-back spends a receive: this one was the last before
			// SQS redrives the message, unhandled, with its ledger item queued.
			log.Error("FIFO: message held back at its last receive; SQS will move it to the dead-letter queue unhandled",
				zap.Int("receive_count", n), zap.Int("max_receive_count", pr.opts.MaxReceiveCount), zap.String("reason", why))
		} else {
			log.Info("FIFO: message released unhandled, to come back in its group's order", zap.String("reason", why))
		}
		pr.setVisibility(pr.final, aws.ToString(m.ReceiptHandle), 0, log)
	}
}

// messageGroups splits msgs by message group, keeping the received order
// within each group.
func messageGroups(msgs []sqstypes.Message) [][]sqstypes.Message {
	var groups [][]sqstypes.Message
	index := map[string]int{}
	for _, m := range msgs {
		g := messageGroup(m)
		i, ok := index[g]
		if !ok {
			i = len(groups)
			index[g] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], m)
	}
	return groups
}

// messageGroup is the message's MessageGroupId system attribute (requested by
// receive on FIFO queues).
func messageGroup(m sqstypes.Message) string {
	return m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
}

// systemAttributes are the system attributes a receive asks for.
func (pr *processor) systemAttributes() []sqstypes.MessageSystemAttributeName {
	names := []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
		sqstypes.MessageSystemAttributeNameSentTimestamp} // the receive-age metric
	if pr.fifo() {
		names = append(names, sqstypes.MessageSystemAttributeNameMessageGroupId)
	}
	return names
}
