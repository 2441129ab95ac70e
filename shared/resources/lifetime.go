package resources

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/ledger"
)

// Assumed when an endpoint does not report an attribute (ElasticMQ reports
// neither): the longest retention SQS allows, so that the TTL rule errs on
// the safe side, and SQS's former message limit, which every queue accepts.
const (
	AssumedRetention       = 14 * 24 * time.Hour
	AssumedMaxMessageBytes = 256 * 1024
)

// QueueAttributes is the part of *sqs.Client ReadQueueLimits uses.
type QueueAttributes interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// QueueLimits are the queue's and the DLQ's retention and message size, as
// SQS reports them.
type QueueLimits struct {
	QueueRetention, DLQRetention             time.Duration
	QueueMaxMessageBytes, DLQMaxMessageBytes int
	// Assumed names the attributes the endpoint did not report (the Assumed*
	// values stand in for them).
	Assumed []string
}

// ReadQueueLimits reads MessageRetentionPeriod and MaximumMessageSize of both
// queues.
func ReadQueueLimits(ctx context.Context, q QueueAttributes, queueURL, dlqURL string) (QueueLimits, error) {
	var l QueueLimits
	for _, qu := range []struct {
		url       string
		retention *time.Duration
		size      *int
	}{{queueURL, &l.QueueRetention, &l.QueueMaxMessageBytes}, {dlqURL, &l.DLQRetention, &l.DLQMaxMessageBytes}} {
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: &qu.url,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameMessageRetentionPeriod,
				sqstypes.QueueAttributeNameMaximumMessageSize},
		})
		if err != nil {
			return QueueLimits{}, fmt.Errorf("retention and message size of %s: %w", qu.url, err)
		}
		*qu.retention = AssumedRetention
		if v, ok := out.Attributes[string(sqstypes.QueueAttributeNameMessageRetentionPeriod)]; ok {
			secs, err := strconv.Atoi(v)
			if err != nil {
				return QueueLimits{}, fmt.Errorf("MessageRetentionPeriod %q of %s: %w", v, qu.url, err)
			}
			*qu.retention = time.Duration(secs) * time.Second
		} else {
			l.Assumed = append(l.Assumed, qu.url+" MessageRetentionPeriod")
		}
		*qu.size = AssumedMaxMessageBytes
		if v, ok := out.Attributes[string(sqstypes.QueueAttributeNameMaximumMessageSize)]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return QueueLimits{}, fmt.Errorf("MaximumMessageSize %q of %s: %w", v, qu.url, err)
			}
			*qu.size = n
		} else {
			l.Assumed = append(l.Assumed, qu.url+" MaximumMessageSize")
		}
	}
	return l, nil
}

// CheckTTL applies ledger.CheckTTL to the queues' retention.
func (l QueueLimits) CheckTTL(ttl time.Duration) error {
	return ledger.CheckTTL(ttl, l.QueueRetention, l.DLQRetention)
}
