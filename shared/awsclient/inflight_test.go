package awsclient_test

import (
	"context"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/awsclient"
)

// heldBackend answers every call only when the test lets it, and records
// how many calls of each service it holds at once.
type heldBackend struct {
	srv     *httptest.Server
	release chan struct{} // closed: every call is answered
	once    sync.Once

	mu      sync.Mutex
	cond    *sync.Cond
	holding map[string]int // service → calls held now
	most    map[string]int // service → most held at once
}

func newHeldBackend(t *testing.T) *heldBackend {
	b := &heldBackend{release: make(chan struct{}), holding: map[string]int{}, most: map[string]int{}}
	b.cond = sync.NewCond(&b.mu)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc := "dynamodb"
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS") {
			svc = "sqs"
		}
		b.mu.Lock()
		b.holding[svc]++
		b.most[svc] = max(b.most[svc], b.holding[svc])
		b.cond.Broadcast()
		b.mu.Unlock()
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		b.mu.Lock()
		b.holding[svc]--
		b.cond.Broadcast()
		b.mu.Unlock()
		body := []byte(`{}`)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)) // as DynamoDB does
		_, _ = w.Write(body)
	}))
	t.Cleanup(func() {
		b.releaseAll()
		b.srv.Close()
	})
	return b
}

func (b *heldBackend) releaseAll() { b.once.Do(func() { close(b.release) }) }

// await waits until the backend holds n calls of svc, or fails after 10 s.
func (b *heldBackend) await(t *testing.T, svc string, n int) {
	t.Helper()
	deadline := time.AfterFunc(10*time.Second, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer deadline.Stop()
	start := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.holding[svc] != n {
		if time.Since(start) >= 10*time.Second {
			t.Fatalf("backend holds %d %s calls, want %d", b.holding[svc], svc, n)
		}
		b.cond.Wait()
	}
}

func (b *heldBackend) mostAtOnce(svc string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.most[svc]
}

func heldClients(t *testing.T, b *heldBackend, inFlight int) *awsclient.Clients {
	t.Helper()
	c, err := awsclient.New(t.Context(), awsclient.Options{
		Region: "us-east-1", DynamoDBEndpoint: b.srv.URL, SQSEndpoint: b.srv.URL, MaxAttempts: 1,
		StaticCredentials: &aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"},
		DynamoDBInFlight:  inFlight,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getItem(ctx context.Context, c *awsclient.Clients) error {
	_, err := c.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	})
	return err
}

// The process's DynamoDB calls beyond the bound wait for a slot, in order,
// under their own context; SQS calls (long polls) are not bounded.
func TestDynamoDBInFlightBound(t *testing.T) {
	b := newHeldBackend(t)
	c := heldClients(t, b, 3)

	var calls sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		calls.Go(func() { errs <- getItem(t.Context(), c) })
	}
	b.await(t, "dynamodb", 3)

	// SQS is not bounded: five calls reach the backend beside the three.
	var polls sync.WaitGroup
	for range 5 {
		polls.Go(func() {
			_, _ = c.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String("q")})
		})
	}
	b.await(t, "sqs", 5)

	// A call whose slot does not come within its deadline fails with it, and
	// never reaches the backend.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := getItem(ctx, c)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call waiting for a slot past its deadline: %v, want context.DeadlineExceeded", err)
	}

	// Answer everything: the waiting calls go in as slots free up.
	b.releaseAll()
	calls.Wait()
	polls.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a bounded call failed: %v", err)
		}
	}
	if most := b.mostAtOnce("dynamodb"); most != 3 {
		t.Errorf("the backend held %d DynamoDB calls at once, want at most (and up to) 3", most)
	}
}

// The zero Options bound nothing.
func TestDynamoDBInFlightUnbounded(t *testing.T) {
	b := newHeldBackend(t)
	c := heldClients(t, b, 0)
	var calls sync.WaitGroup
	for range 10 {
		calls.Go(func() { _ = getItem(t.Context(), c) })
	}
	b.await(t, "dynamodb", 10)
	b.releaseAll()
	calls.Wait()
}
