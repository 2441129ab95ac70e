package processor

// Dead letters: copies of failed, undecodable and expired messages, with the
// reason as attributes (the contract is shared/deadletter's).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
)

// poison dead-letters and deletes a message that is not an envelope: no
// retry can make it one.
func (pr *processor) poison(m sqstypes.Message, cause error, log *zap.Logger) {
	w := pr.final
	log.Error("undecodable message; dead-lettering it", zap.Int("receive_count", receiveCount(m)), zap.Error(cause))
	info := deadletter.Info{Reason: deadletter.ReasonPoison, Error: truncate(cause.Error())}
	if err := pr.deadLetter(w, m, info); err != nil {
		pr.result(ResultBackendError)
		log.Error("dead-letter send failed; leaving the message to reappear", zap.Error(err))
		return
	}
	pr.result(ResultPoison)
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log})
}

// expired dead-letters and deletes a message whose envelope is older than the
// ledger's item TTL and whose key has no item: the item may have expired
// after the event was done, so running it could run it twice.
func (pr *processor) expired(m sqstypes.Message, env envelope.Envelope, cause error, log *zap.Logger) {
	w := pr.final
	log.Error("no ledger item for an envelope older than the item TTL; dead-lettering it, not running it",
		zap.Time("received_at", env.ReceivedAt), zap.Error(cause))
	info := deadletter.Info{Reason: deadletter.ReasonExpired, Error: truncate(cause.Error()), Key: env.Key, Kind: string(env.Kind)}
	if err := pr.deadLetter(w, m, info); err != nil {
		pr.result(ResultBackendError)
		log.Error("dead-letter send failed; leaving the message to reappear", zap.Error(err))
		return
	}
	pr.result(ResultExpired)
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log})
}

// deadLetter sends a copy of m to the dead-letter queue with info as its
// attributes (the contract in shared/deadletter).
func (pr *processor) deadLetter(ctx context.Context, m sqstypes.Message, info deadletter.Info) error {
	info.Processor, info.MessageID = pr.id, aws.ToString(m.MessageId)
	ours := deadletter.Attributes(info)
	attrs := deadLetterAttributes(pr.opts.MaxMessageBytes, len(aws.ToString(m.Body)), m.MessageAttributes, ours)
	in := &sqs.SendMessageInput{QueueUrl: &pr.opts.DeadLetterURL, MessageBody: m.Body, MessageAttributes: attrs}
	if strings.HasSuffix(pr.opts.DeadLetterURL, ".fifo") {
		sum := sha256.Sum256([]byte(aws.ToString(m.MessageId)))
		in.MessageGroupId = aws.String("wahook-dead-letters")
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:]))
	}
	err := pr.retry(ctx, "dead-letter", false, func(ctx context.Context) error {
		_, err := pr.deps.Queue.SendMessage(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("send to dead-letter queue: %w", err)
	}
	pr.metrics.deadLettered.WithLabelValues(info.Reason).Inc()
	return nil
}

// deadLetterAttributes returns the attributes of a dead-letter copy of a
// bodyLen-byte body: ours plus original ones up to SQS's 10 attributes when
// that fits the DLQ's limit (body plus attributes); else ours alone, the
// error cut to fit; else, when even that cannot fit beside the body, none
// (the body matters most).
func deadLetterAttributes(limit, bodyLen int, original, ours map[string]sqstypes.MessageAttributeValue) map[string]sqstypes.MessageAttributeValue {
	room := limit - bodyLen
	attrs := maps.Clone(ours)
	for _, name := range slices.Sorted(maps.Keys(original)) {
		if len(attrs) >= maxMessageAttributes {
			break
		}
		if _, ok := attrs[name]; !ok {
			attrs[name] = original[name]
		}
	}
	if attributesSize(attrs) <= room {
		return attrs
	}
	attrs = maps.Clone(ours)
	if attributesSize(attrs) <= room {
		return attrs
	}
	errAttr, ok := attrs[DLQAttrError]
	delete(attrs, DLQAttrError)
	rest := attributesSize(attrs)
	if rest > room {
		return nil
	}
	// What is left for the error's value, beside its name and type.
	if left := room - rest - len(DLQAttrError) - len(aws.ToString(errAttr.DataType)); ok && left > 0 {
		v := aws.ToString(errAttr.StringValue)
		if v = strings.ToValidUTF8(v[:min(left, len(v))], ""); v != "" {
			errAttr.StringValue = aws.String(v)
			attrs[DLQAttrError] = errAttr
		}
	}
	return attrs
}

// attributesSize is what SQS counts of message attributes against its limit:
// names, data types and values.
func attributesSize(attrs map[string]sqstypes.MessageAttributeValue) int {
	n := 0
	for name, v := range attrs {
		n += len(name) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}
