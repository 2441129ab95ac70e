package harness_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/awstest"
)

// The injector answers as AWS fails, read back through the SDK's own typed
// errors, and passes everything else through untouched.
func TestInjector(t *testing.T) {
	s := harness.Setup(t)
	ctx := t.Context()
	truth := s.Clients
	table, queue := awstest.UniqueName("e2e-inject"), awstest.UniqueName("e2e-inject")
	if _, err := truth.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = truth.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	q, err := truth.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = truth.SQS.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})

	dyn, err := harness.NewInjector(harness.DynamoDB, s.Backend.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dyn.Close() })
	sq, err := harness.NewInjector(harness.SQS, s.Backend.SQSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	o := s.Backend.Options()
	o.DynamoDBEndpoint, o.SQSEndpoint, o.MaxAttempts = dyn.URL(), sq.URL(), 1
	via, err := awsclient.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	put := func(pk string) error {
		_, err := via.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table),
			Item: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}}})
		return err
	}
	get := func(pk string) (bool, error) {
		out, err := via.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}}})
		return err == nil && out.Item != nil, err
	}
	landed := func(pk string) bool {
		out, err := truth.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}}})
		return err == nil && out.Item != nil
	}

	// Writes throttled, reads fine: one line.
	throttle := dyn.Add(harness.Throttle().On(harness.DynamoDBWrites...).For(time.Minute))
	var pte *dbtypes.ProvisionedThroughputExceededException
	if err := put("a"); !errors.As(err, &pte) || !awserr.Transient(err) {
		t.Fatalf("throttled PutItem: %v, want a transient ProvisionedThroughputExceededException", err)
	}
	if landed("a") {
		t.Fatal("a throttled write landed")
	}
	if _, err := get("a"); err != nil {
		t.Fatalf("GetItem while writes are throttled: %v", err)
	}
	if throttle.Hits() != 1 {
		t.Errorf("throttle hits %d, want 1", throttle.Hits())
	}
	dyn.Clear()

	for _, c := range []struct {
		code   string
		status int
	}{{"ThrottlingException", 400}, {"RequestLimitExceeded", 400}, {"InternalServerError", 500}} {
		dyn.Add(harness.Error(c.code, c.status).On("PutItem").Times(1))
		err := put("b")
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != c.code || !awserr.Transient(err) {
			t.Errorf("%s: %v, want a transient API error with that code", c.code, err)
		}
		if err := put("b"); err != nil {
			t.Errorf("%s injected once, the next call failed too: %v", c.code, err)
		}
	}

	// A write that lands but whose reply is lost.
	dyn.Add(harness.LoseReply().On("PutItem").Times(1))
	if err := put("lost"); err == nil {
		t.Fatal("PutItem with its reply lost succeeded")
	}
	if !landed("lost") {
		t.Fatal("the write behind the lost reply did not land")
	}

	// Latency on one operation only.
	dyn.Add(harness.Delay(300 * time.Millisecond).On("GetItem"))
	began := time.Now()
	if err := put("quick"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took >= 300*time.Millisecond {
		t.Errorf("PutItem took %s behind a GetItem delay", took)
	}
	began = time.Now()
	if _, err := get("quick"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("GetItem took %s, want the 300ms delay", took)
	}
	dyn.Clear()

	// SQS: a batch send with half its entries failed, SenderFault false.
	part := sq.Add(harness.PartialBatch().Probability(0.5))
	entries := make([]sqstypes.SendMessageBatchRequestEntry, 10)
	for i := range entries {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String("m")}
	}
	out, err := via.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) != int(part.Hits()) || len(out.Successful)+len(out.Failed) != 10 {
		t.Fatalf("batch: %d successful, %d failed, %d injected", len(out.Successful), len(out.Failed), part.Hits())
	}
	for _, f := range out.Failed {
		if f.SenderFault || aws.ToString(f.Code) != "InternalError" {
			t.Errorf("failed entry %+v, want InternalError with SenderFault false", f)
		}
	}
	attrs, err := truth.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if got := attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]; got != fmt.Sprint(len(out.Successful)) {
		t.Errorf("queue holds %s messages, want the %d successful ones", got, len(out.Successful))
	}
	sq.Clear()

	// SQS errors on one operation.
	sq.Add(harness.Error("InternalError", http.StatusInternalServerError).On("ChangeMessageVisibility").Times(1))
	_, err = via.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl,
		ReceiptHandle: aws.String("nope"), VisibilityTimeout: 1})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "InternalError" || !awserr.Transient(err) {
		t.Errorf("ChangeMessageVisibility: %v, want a transient InternalError", err)
	}
}
