// Package resources is the one definition of wahook's tables and queues, and the
// idempotent Ensure that creates what is missing. Auto-provision, the tests, the
// local stack and LocalStack all create resources through it.
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/ledger"
)

// MessagesKey is the messages table's partition key: the WhatsApp message id.
const MessagesKey = "wamid"

// Spec names and shapes the resources.
type Spec struct {
	LedgerTable   string
	MessagesTable string
	// AuditTable is the audit handler's table (race tests only); empty means none.
	AuditTable string
	QueueName  string
	DLQName    string
	// VisibilityTimeout is the queue's default visibility.
	VisibilityTimeout time.Duration
	// MaxReceiveCount is the redrive policy's limit.
	MaxReceiveCount int
	// Retention is how long SQS keeps a message (both queues; default 14 days,
	// SQS's maximum, so an outage of the workers loses nothing).
	Retention time.Duration
}

// SpecFrom derives the spec from the shared configuration.
func SpecFrom(c config.Common) Spec {
	return Spec{
		LedgerTable:       c.LedgerTable,
		MessagesTable:     c.MessagesTable,
		QueueName:         c.QueueName,
		DLQName:           c.DeadLetterName(),
		VisibilityTimeout: c.VisibilityTimeout,
		MaxReceiveCount:   c.MaxReceiveCount,
	}
}

// FIFOHighThroughput are the attributes of a high-throughput FIFO queue:
// deduplication and the throughput quota per message group (a conversation)
// rather than per queue. The deduplication id hashes the event key, and an
// event's group never changes, so deduplicating per group loses nothing.
var FIFOHighThroughput = map[string]string{
	string(sqstypes.QueueAttributeNameDeduplicationScope):  "messageGroup",
	string(sqstypes.QueueAttributeNameFifoThroughputLimit): "perMessageGroupId",
}

// FIFO reports whether the queue is a FIFO queue.
func (s Spec) FIFO() bool { return strings.HasSuffix(s.QueueName, ".fifo") }

// Provisioned is what Ensure found or created.
type Provisioned struct {
	QueueURL string
	DLQURL   string
}

// LedgerTableInput defines the ledger table.
func LedgerTableInput(name string) *dynamodb.CreateTableInput {
	return hashKeyTable(name, ledger.AttrPK)
}

// AuditKey is the audit table's partition key: the event key.
const AuditKey = "pk"

// AuditTableInput defines the table the audit handler (a verification aid for
// race tests) counts invocations in.
func AuditTableInput(name string) *dynamodb.CreateTableInput {
	return hashKeyTable(name, AuditKey)
}

// MessagesTableInput defines the messages table the store handler writes.
func MessagesTableInput(name string) *dynamodb.CreateTableInput {
	return hashKeyTable(name, MessagesKey)
}

func hashKeyTable(name, key string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String(key), KeyType: dbtypes.KeyTypeHash}},
	}
}

// Ensure creates whatever of spec is missing and returns the queue URLs. It is
// idempotent and safe to run from several processes at once. An emulator that
// lacks the TTL API gets a warning, not a failure.
func Ensure(ctx context.Context, db *dynamodb.Client, q *sqs.Client, spec Spec, log *zap.Logger) (Provisioned, error) {
	if err := EnsureTable(ctx, db, LedgerTableInput(spec.LedgerTable), log); err != nil {
		return Provisioned{}, err
	}
	if err := ensureTTL(ctx, db, spec.LedgerTable, ledger.AttrExpiresAt, log); err != nil {
		return Provisioned{}, err
	}
	if spec.MessagesTable != "" {
		if err := EnsureTable(ctx, db, MessagesTableInput(spec.MessagesTable), log); err != nil {
			return Provisioned{}, err
		}
	}
	if spec.AuditTable != "" {
		if err := EnsureTable(ctx, db, AuditTableInput(spec.AuditTable), log); err != nil {
			return Provisioned{}, err
		}
	}
	retention := spec.Retention
	if retention <= 0 {
		retention = 14 * 24 * time.Hour
	}
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	dlqAttrs := map[string]string{string(sqstypes.QueueAttributeNameMessageRetentionPeriod): secs(retention)}
	if spec.FIFO() {
		dlqAttrs[string(sqstypes.QueueAttributeNameFifoQueue)] = "true"
	}
	dlqURL, err := ensureQueue(ctx, q, spec.DLQName, dlqAttrs, log)
	if err != nil {
		return Provisioned{}, err
	}
	arn, err := queueARN(ctx, q, dlqURL)
	if err != nil {
		return Provisioned{}, err
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": arn,
		"maxReceiveCount":     strconv.Itoa(spec.MaxReceiveCount),
	})
	if err != nil {
		return Provisioned{}, fmt.Errorf("redrive policy: %w", err)
	}
	attrs := map[string]string{
		string(sqstypes.QueueAttributeNameVisibilityTimeout):             secs(spec.VisibilityTimeout),
		string(sqstypes.QueueAttributeNameMessageRetentionPeriod):        secs(retention),
		string(sqstypes.QueueAttributeNameReceiveMessageWaitTimeSeconds): "20",
		string(sqstypes.QueueAttributeNameRedrivePolicy):                 string(redrive),
	}
	if spec.FIFO() {
		attrs[string(sqstypes.QueueAttributeNameFifoQueue)] = "true"
		maps.Copy(attrs, FIFOHighThroughput)
	}
	queueURL, err := ensureQueue(ctx, q, spec.QueueName, attrs, log)
	var badName *sqstypes.InvalidAttributeName
	var badValue *sqstypes.InvalidAttributeValue
	if spec.FIFO() && (errors.As(err, &badName) || errors.As(err, &badValue)) {
		// A backend without high-throughput FIFO: a plain FIFO queue keeps
		// the same order, at SQS's lower per-queue rate.
		log.Warn("the SQS endpoint refuses the high-throughput FIFO attributes; creating a plain FIFO queue",
			zap.String("queue", spec.QueueName), zap.Error(err))
		for name := range FIFOHighThroughput {
			delete(attrs, name)
		}
		queueURL, err = ensureQueue(ctx, q, spec.QueueName, attrs, log)
	}
	if err != nil {
		return Provisioned{}, err
	}
	return Provisioned{QueueURL: queueURL, DLQURL: dlqURL}, nil
}

// EnsureTable creates the table unless it exists and waits until it is active.
func EnsureTable(ctx context.Context, db *dynamodb.Client, in *dynamodb.CreateTableInput, log *zap.Logger) error {
	name := aws.ToString(in.TableName)
	_, err := db.CreateTable(ctx, in)
	var inUse *dbtypes.ResourceInUseException
	switch {
	case err == nil:
		log.Info("created table", zap.String("table", name))
	case errors.As(err, &inUse):
	default:
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	return nil
}

func ensureTTL(ctx context.Context, db *dynamodb.Client, table, attr string, log *zap.Logger) error {
	desc, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if awsclient.IsUnknownOperation(err) {
		log.Warn("this DynamoDB endpoint does not support TTL; ledger items will not expire",
			zap.String("table", table), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("describe TTL of %s: %w", table, err)
	}
	if d := desc.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == attr &&
		(d.TimeToLiveStatus == dbtypes.TimeToLiveStatusEnabled || d.TimeToLiveStatus == dbtypes.TimeToLiveStatusEnabling) {
		return nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &dbtypes.TimeToLiveSpecification{
			AttributeName: aws.String(attr),
			Enabled:       aws.Bool(true),
		},
	})
	if awsclient.IsUnknownOperation(err) {
		log.Warn("this DynamoDB endpoint does not support TTL; ledger items will not expire",
			zap.String("table", table), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("enable TTL on %s: %w", table, err)
	}
	return nil
}

func ensureQueue(ctx context.Context, q *sqs.Client, name string, attrs map[string]string, log *zap.Logger) (string, error) {
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	var exists *sqstypes.QueueNameExists
	if errors.As(err, &exists) {
		// It exists with other attributes: an operator's choice, leave it.
		got, gerr := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if gerr != nil {
			return "", fmt.Errorf("get queue url %s: %w", name, gerr)
		}
		log.Warn("queue exists with other attributes; leaving them", zap.String("queue", name))
		return aws.ToString(got.QueueUrl), nil
	}
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func queueARN(ctx context.Context, q *sqs.Client, url string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("queue arn of %s: %w", url, err)
	}
	arn := out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("queue arn of %s: not returned", url)
	}
	return arn, nil
}

// QueueURL returns the configured queue URL, resolving WAHOOK_QUEUE_NAME with
// GetQueueUrl when no URL is given.
func QueueURL(ctx context.Context, q *sqs.Client, c config.Common) (string, error) {
	if c.QueueURL != "" {
		return c.QueueURL, nil
	}
	out, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(c.QueueName)})
	if err != nil {
		return "", fmt.Errorf("get queue url %s: %w", c.QueueName, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// DeadLetterURL finds the queue's DLQ through its redrive policy.
func DeadLetterURL(ctx context.Context, q *sqs.Client, queueURL string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", fmt.Errorf("redrive policy of %s: %w", queueURL, err)
	}
	raw := out.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", fmt.Errorf("queue %s has no redrive policy", queueURL)
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return "", fmt.Errorf("redrive policy of %s: %w", queueURL, err)
	}
	// arn:aws:sqs:<region>:<account>:<name>
	parts := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[5] == "" {
		return "", fmt.Errorf("redrive policy of %s: bad target %q", queueURL, policy.DeadLetterTargetArn)
	}
	got, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("get dlq url %s: %w", parts[5], err)
	}
	return aws.ToString(got.QueueUrl), nil
}
