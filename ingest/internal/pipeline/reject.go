package pipeline

// Rejection: an event ingest accepts but cannot enqueue — no id (so no key), or
// larger than the queue's MaximumMessageSize — is recorded, never dropped: a
// `rejected` ledger item with the reason, and the raw event in the DLQ with
// the shared/deadletter attributes (reason rejected). Meta is answered 200 for
// it (no retry makes it fit); only when recording it fails is the webhook
// answered 503, so that Meta's retry records it then.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/webhook"
)

// DeadLetterQueue is the part of *sqs.Client the rejection step uses.
type DeadLetterQueue interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// RejectedKeyPrefix starts the ledger key of a rejected object without an id:
// the rest is a hash of its raw JSON, so a duplicate delivery finds it.
const RejectedKeyPrefix = "rejected#"

// OpDeadLetter is the `operation` label of a failed DLQ copy.
const OpDeadLetter = "dead_letter"

// RejectedKey is the ledger key of a rejected object without an id.
func RejectedKey(raw []byte) string {
	sum := sha256.Sum256(raw)
	return RejectedKeyPrefix + hex.EncodeToString(sum[:20])
}

// rejecting reports whether rejected events are recorded (a DLQ is configured).
func (p *Pipeline) rejecting() bool { return p.opts.DeadLetterURL != "" && p.opts.DeadLetters != nil }

// rejectUnkeyed records the objects that could not become events and counts
// them into res: Rejected when recorded (or already recorded), Failed when
// recording failed.
func (p *Pipeline) rejectUnkeyed(ctx context.Context, rs []webhook.Rejected, res *Result, log *zap.Logger) {
	for _, r := range rs {
		p.metrics.Event(string(r.Kind), metrics.ResultRejected)
		if !p.rejecting() {
			res.Rejected++
			// Not the raw object: it may carry a customer's message.
			log.Warn("event rejected: it cannot be deduplicated", zap.String("kind", string(r.Kind)),
				zap.String("reason", r.Reason), zap.Int("raw_bytes", len(r.Raw)))
			continue
		}
		key := RejectedKey(r.Raw)
		reason := "no-id: " + r.Reason
		err := p.recordUnkeyed(ctx, key, r, reason)
		if err != nil {
			res.Failed++
			log.Error("event without an id could not be recorded; asking Meta to retry", logging.Key(key), zap.Error(err))
			continue
		}
		res.Rejected++
		log.Warn("event rejected: it has no id; recorded in the ledger and the dead-letter queue", logging.Key(key),
			zap.String("kind", string(r.Kind)), zap.String("reason", r.Reason), zap.Int("raw_bytes", len(r.Raw)))
	}
}

func (p *Pipeline) recordUnkeyed(ctx context.Context, key string, r webhook.Rejected, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.BackendTimeout)
	defer cancel()
	switch _, err := p.ledger.Get(ctx, key); {
	case err == nil:
		return nil // a duplicate delivery of a rejection already recorded
	case !errors.Is(err, ledger.ErrNotFound):
		p.metrics.BackendError(metrics.BackendDynamoDB, OpAdmit)
		return err
	}
	// The copy first: should the ledger write fail, Meta's retry sends a
	// second copy, which beats none.
	if err := p.deadLetter(ctx, r.Raw, deadletter.Info{Reason: deadletter.ReasonRejected, Error: reason, Kind: string(r.Kind), Key: key}); err != nil {
		return err
	}
	if _, err := p.ledger.Reject(ctx, key, reason); err != nil {
		p.metrics.BackendError(metrics.BackendDynamoDB, OpReject)
		return err
	}
	p.metrics.Rejected(metrics.RejectNoID)
	return nil
}

// OpReject is the `operation` label of a failed rejected-item write.
const OpReject = "reject"

// rejectTooLarge records an owned event no queue message can carry: its raw
// event goes to the DLQ and its item becomes `rejected`. It reports false when
// either failed; the caller then releases the item and fails the event.
func (p *Pipeline) rejectTooLarge(ctx context.Context, it *item, log *zap.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, p.opts.BackendTimeout)
	defer cancel()
	key := it.event.Key
	reason := "too-large: the envelope cannot be encoded"
	if it.body != nil {
		reason = fmt.Sprintf("too-large: %d bytes with its attributes, over the queue's MaximumMessageSize %d", entrySize(it), p.opts.MaxMessageBytes)
	}
	info := deadletter.Info{Reason: deadletter.ReasonRejected, Error: reason, Kind: string(it.event.Kind), Key: key}
	if err := p.deadLetter(ctx, it.event.Raw, info); err != nil {
		log.Error("event too large for the queue, and its dead-letter copy failed", logging.Key(key), zap.Error(err))
		return false
	}
	moved, err := p.ledger.MarkRejected(ctx, *it.receipt, reason)
	if err != nil {
		p.metrics.BackendError(metrics.BackendDynamoDB, OpReject)
		log.Error("event too large for the queue: copied to the dead-letter queue but not marked rejected", logging.Key(key), zap.Error(err))
		return false
	}
	if moved {
		p.metrics.Rejected(metrics.RejectTooLarge)
	}
	log.Warn("event rejected: too large for the queue; recorded in the ledger and the dead-letter queue", logging.Key(key),
		zap.String("reason", reason))
	return true
}

// deadLetter sends raw to the DLQ with info's attributes, cut to fit the
// DLQ's MaximumMessageSize (AttrTruncated then says how large it was).
func (p *Pipeline) deadLetter(ctx context.Context, raw []byte, info deadletter.Info) error {
	if host, err := os.Hostname(); err == nil {
		info.Processor = "ingest@" + host
	}
	attrs := deadletter.Attributes(info)
	room := p.opts.DeadLetterMaxBytes - attributesSize(attrs)
	body := string(raw)
	if len(body) > room {
		attrs[deadletter.AttrTruncated] = deadletter.Number(len(body))
		room = p.opts.DeadLetterMaxBytes - attributesSize(attrs)
		body = strings.ToValidUTF8(body[:max(room, 0)], "")
	}
	if body == "" {
		body = "{}" // SQS refuses an empty body
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(p.opts.DeadLetterURL), MessageBody: aws.String(body), MessageAttributes: attrs}
	if strings.HasSuffix(p.opts.DeadLetterURL, ".fifo") {
		sum := sha256.Sum256([]byte(info.Key))
		in.MessageGroupId = aws.String("wahook-rejected")
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:]))
	}
	if _, err := p.opts.DeadLetters.SendMessage(ctx, in); err != nil {
		p.metrics.BackendError(metrics.BackendSQS, OpDeadLetter)
		return fmt.Errorf("dead-letter copy of %s: %w", info.Key, err)
	}
	return nil
}

func attributesSize(attrs map[string]types.MessageAttributeValue) int {
	n := 0
	for name, v := range attrs {
		n += len(name) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}
