package processor

// Resending: a message at its last receive whose claim or result write failed
// for a backend reason is sent again as a fresh copy, so that infrastructure
// trouble never spends its receive count into the dead-letter queue.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/envelope"
)

// AttrResent is the message attribute that counts, on a fresh copy, how often
// the event's message was sent again at its last receive.
const AttrResent = "wahook_resent"

// resendIfLast sends m again as a fresh copy (receive count 0) and deletes the
// old one when m is at its last receive before SQS would redrive it though
// nothing failed: its claim or result write failed for a backend reason, its
// lease was lost to another claim, or that claim holds the event. The
// dead-letter queue is for handler failures and poison. The
// ledger makes the copy harmless: whichever copy comes second finds the event
// finished, or held, and is dealt with as a duplicate. It reports whether it
// resent.
func (pr *processor) resendIfLast(m sqstypes.Message, env envelope.Envelope, log *zap.Logger) bool {
	return pr.resendIfLastAfter(m, env, 0, log)
}

// resendIfLastAfter is resendIfLast with the fresh copy visible after delay
// seconds (at most SQS's 900; a FIFO queue takes no per-message delay, so
// there the copy is visible at once).
func (pr *processor) resendIfLastAfter(m sqstypes.Message, env envelope.Envelope, delay int32, log *zap.Logger) bool {
	if !pr.lastReceive(m) {
		return false
	}
	ctx := pr.final
	if err := pr.resend(ctx, m, env, delay); err != nil {
		// SQS will redrive the message; the ledger still says where the event
		// is, and an operator's redrive brings it back.
		log.Error("resending a message at its last receive failed; SQS will dead-letter it",
			zap.Int("receive_count", receiveCount(m)), zap.Error(err))
		return false
	}
	pr.metrics.resent.Inc()
	log.Warn("message at its last receive not finished: sent again as a fresh copy",
		zap.Int("receive_count", receiveCount(m)), zap.Int32("delay_s", delay))
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log})
	return true
}

func (pr *processor) resend(ctx context.Context, m sqstypes.Message, env envelope.Envelope, delay int32) error {
	attrs := maps.Clone(m.MessageAttributes)
	if attrs == nil {
		attrs = map[string]sqstypes.MessageAttributeValue{}
	}
	n := 1
	if v, ok := attrs[AttrResent]; ok {
		if prev, err := strconv.Atoi(aws.ToString(v.StringValue)); err == nil {
			n = prev + 1
		}
	}
	attrs[AttrResent] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(n))}
	if len(attrs) > 10 {
		// SQS allows ten attributes; the copy keeps the body above all.
		delete(attrs, AttrResent)
	}
	in := &sqs.SendMessageInput{QueueUrl: &pr.opts.QueueURL, MessageBody: m.Body, MessageAttributes: attrs}
	if strings.HasSuffix(pr.opts.QueueURL, ".fifo") {
		// A fresh deduplication id, or SQS would drop the copy as the old one
		// within its five-minute window.
		sum := sha256.Sum256([]byte(aws.ToString(m.MessageId) + "#resent"))
		in.MessageGroupId = aws.String(env.GroupID())
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:]))
	} else {
		in.DelaySeconds = min(delay, 900)
	}
	err := pr.retry(ctx, "resend", false, func(ctx context.Context) error {
		_, err := pr.deps.Queue.SendMessage(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("resend to %s: %w", pr.opts.QueueURL, err)
	}
	return nil
}
