package harness_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/webhook"
)

func TestMain(m *testing.M) { harness.Main(m) }

func TestSign(t *testing.T) {
	t.Parallel()
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style vector.
	got := harness.Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog"))
	want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := harness.Summarize(d)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P95 != 95*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("Summarize = %s", s)
	}
	if (harness.Summarize(nil) != harness.Summary{}) {
		t.Fatal("Summarize(nil) not zero")
	}
}

func TestWamidOf(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"msg#wamid.HBgL+/abc=":              "wamid.HBgL+/abc=",
		"status#wamid.HBgL+/abc=#delivered": "wamid.HBgL+/abc=",
		"other":                             "",
	} {
		if got := harness.WamidOf(key); got != want {
			t.Errorf("WamidOf(%q) = %q, want %q", key, got, want)
		}
	}
}

// The generator's payloads are what the shared parser expects: every event
// with its key, contact and metadata.
func TestPayloadShape(t *testing.T) {
	t.Parallel()
	g := harness.NewGen(1)
	msgs := g.Messages(30)
	var statuses []harness.Status
	for _, m := range msgs[:5] {
		statuses = append(statuses, g.Lifecycle(m.ID, m.From)...)
	}
	p := g.Payload(msgs, statuses)
	b, err := webhook.Parse(p.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if b.Object != "whatsapp_business_account" || len(b.Rejected) > 0 {
		t.Fatalf("object %q, rejected %v", b.Object, b.Rejected)
	}
	keys := p.Keys()
	if len(b.Events) != len(keys) {
		t.Fatalf("%d events, want %d", len(b.Events), len(keys))
	}
	types := map[string]int{}
	for i, e := range b.Events {
		if e.Key != keys[i] {
			t.Errorf("event %d key %s, want %s", i, e.Key, keys[i])
		}
		if e.PhoneNumberID != g.PhoneNumberID || e.WABAID != g.WABAID {
			t.Errorf("event %d metadata %s/%s", i, e.WABAID, e.PhoneNumberID)
		}
		if e.Kind == webhook.KindMessage && (e.Contact == nil || e.Contact.WaID != e.Customer) {
			t.Errorf("event %d contact %+v, customer %s", i, e.Contact, e.Customer)
		}
		types[string(e.Kind)]++
	}
	for _, m := range msgs {
		types[string(m.Type)]++
	}
	for _, k := range []string{"message", "status", "text", "image", "interactive"} {
		if types[k] == 0 {
			t.Errorf("no %s in the generated payload: %v", k, types)
		}
	}

	seed, err := webhook.Parse(harness.SeedPayload("test_msg_001", "1234567890", "Test message", "1642248600"))
	if err != nil || len(seed.Events) != 1 || seed.Events[0].Key != "msg#test_msg_001" {
		t.Fatalf("seed payload: %+v, %v", seed, err)
	}
}

// Traffic of a client pointed at a link really flows through it — for SQS
// too, where ElasticMQ's and LocalStack's QueueUrls name the backend's own
// host — and each fault does what it says.
func TestLinks(t *testing.T) {
	s := harness.Setup(t)
	ctx := t.Context()
	truth := s.Clients
	table, queue := awstest.UniqueName("e2e-links"), awstest.UniqueName("e2e-links")
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

	dl, err := s.Faults.Link(t.Name()+"/dynamodb", s.Backend.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dl.Close)
	sl, err := s.Faults.Link(t.Name()+"/sqs", s.Backend.SQSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sl.Close)
	o := s.Backend.Options()
	o.DynamoDBEndpoint, o.SQSEndpoint, o.MaxAttempts = dl.Endpoint(), sl.Endpoint(), 1
	viaLink, err := awsclient.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("queue URL %s; SQS link %s -> %s", aws.ToString(q.QueueUrl), sl.Endpoint(), sl.Upstream)

	put := func(ctx context.Context, pk string) error {
		_, err := viaLink.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(table),
			Item:      map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}},
		})
		return err
	}
	send := func(ctx context.Context) error {
		_, err := viaLink.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("x")})
		return err
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 1500*time.Millisecond) }
	both := func(wantErr bool, what string) {
		t.Helper()
		c, cancel := short()
		defer cancel()
		errD, errS := put(c, what), send(c)
		if (errD != nil) != wantErr || (errS != nil) != wantErr {
			t.Fatalf("%s: PutItem err = %v, SendMessage err = %v; want errors: %v", what, errD, errS, wantErr)
		}
	}

	both(false, "healthy")
	for _, f := range []harness.Fault{harness.FaultRefuse, harness.FaultBlackhole, harness.FaultReset} {
		for _, l := range []*harness.Link{dl, sl} {
			if err := l.Apply(f); err != nil {
				t.Fatal(err)
			}
		}
		both(true, string(f))
		for _, l := range []*harness.Link{dl, sl} {
			if err := l.Restore(); err != nil {
				t.Fatal(err)
			}
		}
		both(false, "restored after "+string(f))
	}

	// Replies dropped: the write is applied, the caller never hears of it.
	// How the call ends depends on the backend: one that keeps the connection
	// open leaves it to its deadline; one that closes every connection after
	// its reply (moto) ends it at once with the connection's EOF.
	if err := dl.Apply(harness.FaultDropReplies); err != nil {
		t.Fatal(err)
	}
	c, cancel := short()
	err = put(c, "dropped-reply")
	cancel()
	if err == nil {
		t.Fatal("PutItem with replies dropped succeeded, want an error")
	}
	t.Logf("PutItem with replies dropped: %v", err)
	got, err := truth.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "dropped-reply"}},
	})
	if err != nil || got.Item == nil {
		t.Fatalf("the write behind the dropped reply was not applied: %v, %v", got, err)
	}
	if err := dl.Restore(); err != nil {
		t.Fatal(err)
	}

	if err := dl.Apply(harness.FaultLatency); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := put(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("PutItem with latency took %v", took)
	}
	if err := dl.Restore(); err != nil {
		t.Fatal(err)
	}
	both(false, "restored at the end")
}
