package awsclient_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/shared/awsclient"
)

// Endpoints from the environment are used; Options override them.
func TestNewEndpointsFromEnvAndOptions(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // nothing listens there
	t.Setenv("AWS_ENDPOINT_URL_SQS", emu.SQSEndpoint)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", emu.DynamoDBEndpoint)

	c, err := awsclient.New(t.Context(), awsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SQS.ListQueues(t.Context(), &sqs.ListQueuesInput{}); err != nil {
		t.Errorf("SQS via AWS_ENDPOINT_URL_SQS: %v", err)
	}
	if _, err := c.DynamoDB.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Errorf("DynamoDB via AWS_ENDPOINT_URL_DYNAMODB: %v", err)
	}

	// Options win over the environment.
	t.Setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:1")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
	c, err = awsclient.New(t.Context(), awsclient.Options{
		SQSEndpoint: emu.SQSEndpoint, DynamoDBEndpoint: emu.DynamoDBEndpoint, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SQS.ListQueues(t.Context(), &sqs.ListQueuesInput{}); err != nil {
		t.Errorf("SQS via Options: %v", err)
	}
	if _, err := c.DynamoDB.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Errorf("DynamoDB via Options: %v", err)
	}
}

// AWS_CA_BUNDLE (set on this machine) must not break loading: the HTTP
// client is the SDK's BuildableClient, which config loading can extend.
func TestNewWithCABundle(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
	o := emu.Options()
	if _, err := awsclient.New(t.Context(), o); err != nil {
		t.Fatalf("New with AWS_CA_BUNDLE: %v", err)
	}
}

func TestNewNeedsRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_PROFILE", "")
	_, err := awsclient.New(t.Context(), awsclient.Options{})
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("err = %v, want a missing-region error naming AWS_REGION", err)
	}
}

func TestStaticCredentialsValidated(t *testing.T) {
	_, err := awsclient.New(t.Context(), awsclient.Options{Region: "us-east-1", StaticCredentials: &aws.Credentials{AccessKeyID: "x"}})
	if err == nil {
		t.Fatal("want an error for StaticCredentials without a secret")
	}
}

// The workaround's wrapper hands net/http a body without io.WriterTo, and
// the same bytes.
func TestHideWriterToInner(t *testing.T) {
	var got io.ReadCloser
	inner := doFunc(func(req *http.Request) (*http.Response, error) {
		got = req.Body
		b, _ := io.ReadAll(req.Body)
		if string(b) != "payload" {
			t.Errorf("body = %q", b)
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(nil))}, nil
	})
	c := awsclient.HideWriterTo(inner)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", io.NopCloser(bytes.NewReader([]byte("payload"))))
	if _, ok := req.Body.(io.WriterTo); !ok {
		t.Fatal("test setup: body should implement io.WriterTo")
	}
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(io.WriterTo); ok {
		t.Error("the wrapped client passed an io.WriterTo body to net/http")
	}
}

func TestIsUnknownOperation(t *testing.T) {
	if !awsclient.IsUnknownOperation(&smithy.GenericAPIError{Code: "UnknownOperationException"}) {
		t.Error("UnknownOperationException not recognised")
	}
	if awsclient.IsUnknownOperation(&smithy.GenericAPIError{Code: "ValidationException"}) || awsclient.IsUnknownOperation(errors.New("x")) || awsclient.IsUnknownOperation(nil) {
		t.Error("false positive")
	}
}

type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }
