// Package awsclient builds the AWS SDK clients (DynamoDB, SQS) that wahook's
// services share, with HTTP and retry settings suited to long polls and ~100
// concurrent calls per process.
//
// The zero Options take everything from the SDK's own environment chain:
// AWS_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB,
// AWS_MAX_ATTEMPTS, AWS_CA_BUNDLE, the credentials chain, shared config files.
// Non-empty fields in Options win over the environment.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Defaults for the HTTP transport. There is deliberately no overall client
// timeout: an SQS long poll lasts up to 20 s; callers bound calls with contexts.
const (
	DefaultDialTimeout         = 3 * time.Second
	DefaultMaxIdleConnsPerHost = 128
	DefaultIdleConnTimeout     = 30 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
)

// Options configures New. The zero value takes everything from the SDK's
// environment chain.
type Options struct {
	// Region overrides AWS_REGION / the shared config's region.
	Region string

	// DynamoDBEndpoint and SQSEndpoint override the endpoints (for emulators).
	// They are set as the service clients' BaseEndpoint and so win over
	// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_{DYNAMODB,SQS}.
	DynamoDBEndpoint string
	SQSEndpoint      string

	// StaticCredentials, when non-nil, replace the credentials chain
	// (tests and emulators: any non-empty key works there).
	StaticCredentials *aws.Credentials

	// MaxAttempts is the retryer's maximum number of attempts per call,
	// first one included (standard retryer: exponential backoff with jitter).
	// 0 keeps the SDK default (AWS_MAX_ATTEMPTS, else 3).
	MaxAttempts int

	// MaxBackoff caps the delay between retries; 0 keeps the SDK default (20 s).
	MaxBackoff time.Duration

	// DialTimeout bounds establishing a TCP connection; 0 = DefaultDialTimeout.
	DialTimeout time.Duration

	// MaxIdleConnsPerHost is the size of the idle connection pool per endpoint;
	// 0 = DefaultMaxIdleConnsPerHost (enough for ~100 concurrent calls).
	MaxIdleConnsPerHost int

	// DynamoDBInFlight bounds the DynamoDB calls the clients have in flight at
	// once, across all their callers (retries included, each attempt taking a
	// slot while it is in flight); a call beyond it waits in order, under its
	// own context. 0 = unbounded. SQS calls are not bounded (long polls would
	// hold slots for their whole wait).
	DynamoDBInFlight int

	// exposeWriterTo disables the request-body wrapper (tests only: used to
	// check whether the SDK issue it works around reproduces).
	exposeWriterTo bool
	// wrapHTTP, when set, wraps the final HTTP client (tests only: counting).
	wrapHTTP func(aws.HTTPClient) aws.HTTPClient
}

// Clients holds the resolved configuration and the service clients built from
// it. All are safe for concurrent use.
type Clients struct {
	Config   aws.Config
	DynamoDB *dynamodb.Client
	SQS      *sqs.Client
}

// New loads the AWS configuration and builds the DynamoDB and SQS clients.
func New(ctx context.Context, o Options) (*Clients, error) {
	cfg, err := LoadConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	c := &Clients{Config: cfg}
	if o.DynamoDBInFlight < 0 {
		return nil, fmt.Errorf("awsclient: DynamoDBInFlight %d is negative", o.DynamoDBInFlight)
	}
	c.DynamoDB = dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		if o.DynamoDBEndpoint != "" {
			do.BaseEndpoint = aws.String(o.DynamoDBEndpoint)
		}
		if o.DynamoDBInFlight > 0 {
			do.HTTPClient = newInFlightClient(do.HTTPClient, o.DynamoDBInFlight)
		}
	})
	c.SQS = sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if o.SQSEndpoint != "" {
			so.BaseEndpoint = aws.String(o.SQSEndpoint)
		}
	})
	return c, nil
}

// LoadConfig returns the aws.Config New builds its clients from (shared HTTP
// client, retryer, region, credentials), for callers that need other
// service clients. Endpoint overrides in Options are not part of it.
func LoadConfig(ctx context.Context, o Options) (aws.Config, error) {
	dial := o.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	perHost := o.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = DefaultMaxIdleConnsPerHost
	}

	// Build on the SDK's BuildableClient (not a plain *http.Client): config
	// loading must still be able to apply AWS_CA_BUNDLE to its transport.
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = dial
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = perHost * 2
			t.MaxIdleConnsPerHost = perHost
			t.MaxConnsPerHost = 0 // unlimited; concurrency is bounded by callers
			t.IdleConnTimeout = DefaultIdleConnTimeout
			t.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
			t.ResponseHeaderTimeout = 0 // long polls: no header deadline
		})

	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.StaticCredentials != nil {
		sc := *o.StaticCredentials
		if sc.AccessKeyID == "" || sc.SecretAccessKey == "" {
			return aws.Config{}, errors.New("awsclient: StaticCredentials needs AccessKeyID and SecretAccessKey")
		}
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(sc.AccessKeyID, sc.SecretAccessKey, sc.SessionToken)))
	}
	if o.MaxAttempts > 0 || o.MaxBackoff > 0 {
		maxAttempts, maxBackoff := o.MaxAttempts, o.MaxBackoff
		loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				if maxAttempts > 0 {
					so.MaxAttempts = maxAttempts
				}
				if maxBackoff > 0 {
					so.MaxBackoff = maxBackoff
				}
			})
		}))
	}

	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("awsclient: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("awsclient: no AWS region: set AWS_REGION (or Options.Region)")
	}
	if !o.exposeWriterTo {
		cfg.HTTPClient = &hideWriterToClient{next: cfg.HTTPClient}
	}
	if o.wrapHTTP != nil {
		cfg.HTTPClient = o.wrapHTTP(cfg.HTTPClient)
	}
	return cfg, nil
}
