package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
)

// Environment variables that choose the backend.
const (
	// EnvBackend forces a backend: localstack, env, emulators or
	// localstack-sqs. Unset: LocalStack when a Docker engine answers, else
	// endpoints from the environment, else the local emulators when installed.
	EnvBackend = "WAHOOK_E2E_BACKEND"
	// EnvLocalStackImage overrides the LocalStack image (default DefaultLocalStackImage).
	EnvLocalStackImage = "WAHOOK_E2E_LOCALSTACK_IMAGE"
	// EnvLocalStackAuthToken is passed through to LocalStack when set.
	EnvLocalStackAuthToken = "LOCALSTACK_AUTH_TOKEN"
)

// Backend kinds.
const (
	BackendLocalStack = "localstack"
	BackendEnv        = "env"
	BackendEmulators  = "emulators" // dynalite + ElasticMQ, as processes
	// BackendLocalStackSQS is dynalite + LocalStack's SQS, as processes on the
	// host (no Docker): the SQS that keeps abandoned long polls open, as AWS does.
	BackendLocalStackSQS = "localstack-sqs"
)

// ErrNoBackend: no backend could be found; the error says what was tried.
var ErrNoBackend = errors.New("no AWS-compatible backend")

// Backend is a DynamoDB and an SQS endpoint the processes and the test use.
type Backend struct {
	Kind             string
	Detail           string // what runs there, for the log
	DynamoDBEndpoint string // http://host:port
	SQSEndpoint      string
	Region           string
	AccessKeyID      string
	SecretAccessKey  string

	stop func(ctx context.Context) error
	logs func(maxBytes int64) string
}

// FIFOGroupReleasedInFlight reports whether the backend's SQS hands out a
// FIFO group's later messages, made visible again, while an earlier message
// of the group is still in flight — LocalStack's SQS does; AWS, by its
// documentation, and ElasticMQ keep the group blocked (measured by
// shared/awstest's TestSQSEmulatorBehaviour on LocalStack 4.14 on the host;
// the Docker image's SQS is the same code, assumed, not measured here). On
// such a backend a conversation keeps its order only as long as none of its
// messages is handed out a second time.
func (b *Backend) FIFOGroupReleasedInFlight() bool {
	return b.Kind == BackendLocalStack || b.Kind == BackendLocalStackSQS
}

// String describes the backend in one line.
func (b *Backend) String() string {
	return fmt.Sprintf("%s (%s): dynamodb %s, sqs %s", b.Kind, b.Detail, b.DynamoDBEndpoint, b.SQSEndpoint)
}

// Stop releases what StartBackend started (nothing for endpoints from the environment).
func (b *Backend) Stop(ctx context.Context) error {
	if b == nil || b.stop == nil {
		return nil
	}
	return b.stop(ctx)
}

// Logs returns the tail of the backend's own logs, when it has any.
func (b *Backend) Logs(maxBytes int64) string {
	if b == nil || b.logs == nil {
		return ""
	}
	return b.logs(maxBytes)
}

// Options are awsclient options that talk to the backend directly (not through
// any fault-injecting proxy): what the tests read the truth with.
func (b *Backend) Options() awsclient.Options {
	return awsclient.Options{
		Region:            b.Region,
		DynamoDBEndpoint:  b.DynamoDBEndpoint,
		SQSEndpoint:       b.SQSEndpoint,
		StaticCredentials: &aws.Credentials{AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey},
	}
}

// StartBackend chooses a backend (see EnvBackend) and starts it when it is
// ours to start. When nothing is available the error wraps ErrNoBackend and
// says why; any other error is a backend that should have worked and did not.
func StartBackend(ctx context.Context) (*Backend, error) {
	switch kind := os.Getenv(EnvBackend); kind {
	case BackendLocalStack:
		if ok, why := dockerAvailable(ctx); !ok {
			return nil, fmt.Errorf("%s=%s: %s", EnvBackend, kind, why)
		}
		return startLocalStack(ctx)
	case BackendEnv:
		b, why := fromEnv()
		if b == nil {
			return nil, fmt.Errorf("%s=%s: %s", EnvBackend, kind, why)
		}
		return b, nil
	case BackendEmulators:
		return startEmulators(ctx, awstest.SQSElasticMQ)
	case BackendLocalStackSQS:
		return startEmulators(ctx, awstest.SQSLocalStack)
	case "":
	default:
		return nil, fmt.Errorf("%s=%q: want %s, %s, %s or %s", EnvBackend, kind, BackendLocalStack, BackendEnv,
			BackendEmulators, BackendLocalStackSQS)
	}

	// Endpoints set for tests are a deliberate choice: they win over Docker.
	if b, ok := awstest.FromEnv(); ok {
		return envBackend(b.DynamoDBEndpoint, b.SQSEndpoint, awstest.EnvDynamoDBEndpoint+"/"+awstest.EnvSQSEndpoint), nil
	}
	var tried []string
	docker, why := dockerAvailable(ctx)
	if docker {
		return startLocalStack(ctx)
	}
	tried = append(tried, "LocalStack: "+why)
	b, why := fromEnv()
	if b != nil {
		return b, nil
	}
	tried = append(tried, "endpoints from the environment: "+why)
	installed, why := emulatorsInstalled()
	if installed {
		return startEmulators(ctx, awstest.SQSElasticMQ)
	}
	tried = append(tried, "local emulators: "+why)
	return nil, fmt.Errorf("%w: %s", ErrNoBackend, strings.Join(tried, "; "))
}

// fromEnv takes the endpoints from WAHOOK_TEST_*_ENDPOINT or the SDK's own
// AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL.
func fromEnv() (*Backend, string) {
	if b, ok := awstest.FromEnv(); ok {
		return envBackend(b.DynamoDBEndpoint, b.SQSEndpoint, awstest.EnvDynamoDBEndpoint+"/"+awstest.EnvSQSEndpoint), ""
	}
	d, s := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), os.Getenv("AWS_ENDPOINT_URL_SQS")
	if all := os.Getenv("AWS_ENDPOINT_URL"); all != "" {
		d, s = cmpOr(d, all), cmpOr(s, all)
	}
	if d == "" || s == "" {
		return nil, fmt.Sprintf("neither %s and %s nor AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SQS are set",
			awstest.EnvDynamoDBEndpoint, awstest.EnvSQSEndpoint)
	}
	return envBackend(d, s, "AWS_ENDPOINT_URL_*"), ""
}

func envBackend(dynamo, sqs, from string) *Backend {
	return &Backend{
		Kind:             BackendEnv,
		Detail:           "from " + from,
		DynamoDBEndpoint: dynamo,
		SQSEndpoint:      sqs,
		Region:           cmpOr(os.Getenv("AWS_REGION"), awstest.Region),
		AccessKeyID:      cmpOr(os.Getenv("AWS_ACCESS_KEY_ID"), awstest.AccessKeyID),
		SecretAccessKey:  cmpOr(os.Getenv("AWS_SECRET_ACCESS_KEY"), awstest.SecretAccessKey),
	}
}

// emulatorsInstalled reports whether localstack/install.sh has run.
func emulatorsInstalled() (bool, string) {
	dir, err := awstest.LocalstackDir()
	if err != nil {
		return false, err.Error()
	}
	tools := cmpOr(os.Getenv(awstest.EnvToolsDir), filepath.Join(dir, ".tools"))
	for _, marker := range []string{"dynalite/.installed", "elasticmq/.installed"} {
		if _, err := os.Stat(filepath.Join(tools, marker)); err != nil {
			return false, fmt.Sprintf("not installed in %s (run %s)", tools, filepath.Join(dir, "install.sh"))
		}
	}
	return true, ""
}

func startEmulators(ctx context.Context, sqsImpl string) (*Backend, error) {
	emu, err := awstest.StartSQS(ctx, sqsImpl)
	if err != nil {
		return nil, fmt.Errorf("start local emulators: %w", err)
	}
	kind, detail := BackendEmulators, "dynalite + ElasticMQ from localstack/.tools"
	if sqsImpl == awstest.SQSLocalStack {
		kind, detail = BackendLocalStackSQS, "dynalite + LocalStack's SQS (host, no Docker) from localstack/.tools"
	}
	return &Backend{
		Kind:             kind,
		Detail:           detail,
		DynamoDBEndpoint: emu.DynamoDBEndpoint,
		SQSEndpoint:      emu.SQSEndpoint,
		Region:           awstest.Region,
		AccessKeyID:      awstest.AccessKeyID,
		SecretAccessKey:  awstest.SecretAccessKey,
		stop:             func(context.Context) error { return emu.Stop() },
		logs:             emu.Logs,
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
