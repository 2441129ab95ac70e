package awsclient_test

// Behaviours of DynamoDB that wahook's ledger relies on, pinned against dynalite.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
)

// newTable creates a pay-per-request table keyed by the string "pk" and
// deletes it at the end of the test.
func newTable(t *testing.T, c *awsclient.Clients) string {
	t.Helper()
	name := awstest.UniqueName("ledger")
	_, err := c.DynamoDB.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            &name,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	w := dynamodb.NewTableExistsWaiter(c.DynamoDB, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(t.Context(), &dynamodb.DescribeTableInput{TableName: &name}, 10*time.Second); err != nil {
		t.Fatalf("table %s not active: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: &name})
	})
	return name
}

func s(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
func n(v int64) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// 50 goroutines race a conditional put (attribute_not_exists) on one key:
// exactly one wins, the others get ConditionalCheckFailedException.
func TestDynamoDBConditionalPutRace(t *testing.T) {
	t.Parallel()
	c := clients(t)
	table := newTable(t, c)
	const racers, rounds = 50, 5
	for r := range rounds {
		key := fmt.Sprintf("msg#wamid.race%d", r)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			winners  []int
			failed   int
			other    []error
			start    = make(chan struct{})
			sampleCF error
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := c.DynamoDB.PutItem(t.Context(), &dynamodb.PutItemInput{
					TableName: &table,
					Item: map[string]ddbtypes.AttributeValue{
						"pk": s(key), "state": s("received"), "owner": s(strconv.Itoa(i)), "received_at": n(time.Now().UnixMilli()),
					},
					ConditionExpression: aws.String("attribute_not_exists(pk)"),
				})
				mu.Lock()
				defer mu.Unlock()
				var ccf *ddbtypes.ConditionalCheckFailedException
				switch {
				case err == nil:
					winners = append(winners, i)
				case errors.As(err, &ccf):
					failed++
					sampleCF = err
				default:
					other = append(other, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range other {
			t.Errorf("round %d: unexpected error: %v", r, err)
		}
		if len(winners) != 1 || failed != racers-1 {
			t.Fatalf("round %d: %d winners %v, %d conditional failures; want exactly 1 winner", r, len(winners), winners, failed)
		}
		got, err := c.DynamoDB.GetItem(t.Context(), &dynamodb.GetItemInput{
			TableName: &table, Key: map[string]ddbtypes.AttributeValue{"pk": s(key)}, ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		if owner := got.Item["owner"].(*ddbtypes.AttributeValueMemberS).Value; owner != strconv.Itoa(winners[0]) {
			t.Fatalf("round %d: stored owner %s, winner %d", r, owner, winners[0])
		}
		if r == 0 {
			t.Logf("conditional failure: %s", errCode(sampleCF))
		}
	}
}

// The ledger's Claim-style update: OR of attribute_not_exists, IN and a
// lease comparison; ReturnValuesOnConditionCheckFailure is probed.
func TestDynamoDBClaimCondition(t *testing.T) {
	t.Parallel()
	c := clients(t)
	table := newTable(t, c)
	now := time.Now().UnixMilli()
	claim := func(key, owner string, now int64) error {
		_, err := c.DynamoDB.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
			TableName: &table,
			Key:       map[string]ddbtypes.AttributeValue{"pk": s(key)},
			UpdateExpression: aws.String("SET #state = :processing, #owner = :me, lease_until = :lease, " +
				"attempt = if_not_exists(attempt, :zero) + :one"),
			ConditionExpression: aws.String("attribute_not_exists(pk) OR #state IN (:received, :queued) OR " +
				"(#state = :processing AND lease_until < :now)"),
			ExpressionAttributeNames: map[string]string{"#state": "state", "#owner": "owner"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":processing": s("processing"), ":received": s("received"), ":queued": s("queued"),
				":me": s(owner), ":lease": n(now + 1000), ":now": n(now), ":zero": n(0), ":one": n(1),
			},
			ReturnValuesOnConditionCheckFailure: ddbtypes.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	}
	// No item at all: claimable.
	if err := claim("k1", "p1", now); err != nil {
		t.Fatalf("claim of a missing item: %v", err)
	}
	// Live lease of p1: p2 fails.
	err := claim("k1", "p2", now+10)
	var ccf *ddbtypes.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Fatalf("claim of a live lease: err = %v, want ConditionalCheckFailedException", err)
	}
	if ccf.Item != nil {
		t.Logf("ReturnValuesOnConditionCheckFailure=ALL_OLD: item returned, owner=%v", ccf.Item["owner"])
	} else {
		t.Logf("ReturnValuesOnConditionCheckFailure=ALL_OLD: NO item returned in the error (not supported by this emulator)")
	}
	// Expired lease: p2 takes over, attempt is 2.
	if err := claim("k1", "p2", now+2000); err != nil {
		t.Fatalf("claim of an expired lease: %v", err)
	}
	got, err := c.DynamoDB.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: &table, Key: map[string]ddbtypes.AttributeValue{"pk": s("k1")}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Item["attempt"].(*ddbtypes.AttributeValueMemberN).Value; a != "2" {
		t.Errorf("attempt = %s, want 2", a)
	}
	if o := got.Item["owner"].(*ddbtypes.AttributeValueMemberS).Value; o != "p2" {
		t.Errorf("owner = %s, want p2", o)
	}
}

// UpdateTimeToLive / DescribeTimeToLive and TransactWriteItems on the
// emulator: recorded (the resource code treats "not supported" as a warning).
func TestDynamoDBUnsupportedProbe(t *testing.T) {
	t.Parallel()
	c := clients(t)
	table := newTable(t, c)

	_, err := c.DynamoDB.UpdateTimeToLive(t.Context(), &dynamodb.UpdateTimeToLiveInput{
		TableName: &table,
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
			AttributeName: aws.String("expires_at"), Enabled: aws.Bool(true),
		},
	})
	t.Logf("UpdateTimeToLive: %s", errDetail(err))
	// dynalite 4.0.0: HTTP 400 UnknownOperationException (*smithy.GenericAPIError).
	if err != nil && !awsclient.IsUnknownOperation(err) {
		t.Errorf("UpdateTimeToLive: %v; want success or UnknownOperationException", err)
	}
	var ae smithy.APIError
	if err != nil && (!errors.As(err, &ae) || ae.ErrorCode() != "UnknownOperationException") {
		t.Errorf("UpdateTimeToLive error code changed: %s", errDetail(err))
	}
	d, err := c.DynamoDB.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err == nil && d.TimeToLiveDescription != nil {
		t.Logf("DescribeTimeToLive: ok, status %q attribute %q", d.TimeToLiveDescription.TimeToLiveStatus, aws.ToString(d.TimeToLiveDescription.AttributeName))
	} else {
		t.Logf("DescribeTimeToLive: %s", errDetail(err))
	}

	_, err = c.DynamoDB.TransactWriteItems(t.Context(), &dynamodb.TransactWriteItemsInput{
		TransactItems: []ddbtypes.TransactWriteItem{{Put: &ddbtypes.Put{
			TableName: &table, Item: map[string]ddbtypes.AttributeValue{"pk": s("tx")},
		}}},
	})
	t.Logf("TransactWriteItems: %s", errDetail(err))
	if err != nil && !awsclient.IsUnknownOperation(err) {
		t.Errorf("TransactWriteItems: %v", err)
	}
}

func errDetail(err error) string {
	if err == nil {
		return "ok (no error)"
	}
	var ae smithy.APIError
	var re interface{ HTTPStatusCode() int }
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	if errors.As(err, &ae) {
		return fmt.Sprintf("HTTP %d, %T, ErrorCode=%q, message=%q", status, ae, ae.ErrorCode(), ae.ErrorMessage())
	}
	return fmt.Sprintf("HTTP %d, %T: %v", status, err, err)
}
