package resources_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/resources"
)

// refusingAWS is fakeAWS with an SQS endpoint that has no high-throughput
// FIFO: CreateQueue with DeduplicationScope fails with InvalidAttributeName.
type refusingAWS struct {
	fakeAWS
	refused int
}

func (f *refusingAWS) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".CreateQueue") && bytes.Contains(body, []byte("DeduplicationScope")) {
		f.refused++
		msg, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#InvalidAttributeName", "message": "Unknown Attribute DeduplicationScope."})
		return &http.Response{
			StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
			Body: io.NopCloser(bytes.NewReader(msg)), ContentLength: int64(len(msg)), Request: r,
		}, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return f.fakeAWS.Do(r)
}

// A backend that refuses the high-throughput attributes still gets a FIFO
// queue, without them.
func TestFIFOWithoutHighThroughput(t *testing.T) {
	cfg, err := config.LoadFrom[config.Common](map[string]string{"WAHOOK_QUEUE_NAME": "events.fifo"})
	if err != nil {
		t.Fatal(err)
	}
	spec := resources.SpecFrom(cfg)
	f := &refusingAWS{}
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, HTTPClient: f,
		DisableValidateResponseChecksum: true})
	q := sqs.New(sqs.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, HTTPClient: f})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prov, err := resources.Ensure(ctx, db, q, spec, zap.NewNop())
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if f.refused != 1 || !strings.HasSuffix(prov.QueueURL, "/events.fifo") {
		t.Fatalf("refused %d times, queue %q: want one refusal, then events.fifo", f.refused, prov.QueueURL)
	}
	attrs, _ := f.find(t, "CreateQueue", "QueueName", "events.fifo")["Attributes"].(map[string]any)
	if attrs["FifoQueue"] != "true" || attrs["DeduplicationScope"] != nil || attrs["FifoThroughputLimit"] != nil {
		t.Errorf("fallback queue attributes %v: want FIFO without the high-throughput ones", attrs)
	}
}
