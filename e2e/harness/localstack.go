package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/localstack"

	"github.com/wahook/wahook/shared/awstest"
)

// DefaultLocalStackImage is pinned to a release that starts without an auth
// token (newer images require LOCALSTACK_AUTH_TOKEN, which is passed through
// when set).
const DefaultLocalStackImage = "localstack/localstack:3.8.1"

// dockerAvailable reports whether a Docker engine answers, and why not.
func dockerAvailable(ctx context.Context) (ok bool, why string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// testcontainers panics on some broken Docker setups; that is a "no".
	defer func() {
		if r := recover(); r != nil {
			ok, why = false, fmt.Sprintf("no Docker engine (%v)", r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false, fmt.Sprintf("no Docker engine answers (%v)", err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return false, fmt.Sprintf("Docker engine does not answer a ping (%v)", err)
	}
	return true, ""
}

func startLocalStack(ctx context.Context) (*Backend, error) {
	img := cmpOr(os.Getenv(EnvLocalStackImage), DefaultLocalStackImage)
	env := map[string]string{
		"SERVICES":              "dynamodb,sqs",
		"EAGER_SERVICE_LOADING": "1",
	}
	if tok := os.Getenv(EnvLocalStackAuthToken); tok != "" {
		env[EnvLocalStackAuthToken] = tok
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	ctr, err := localstack.Run(ctx, img, testcontainers.WithEnv(env))
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return nil, fmt.Errorf("start LocalStack %s: %w", img, err)
	}
	endpoint, err := ctr.PortEndpoint(ctx, "4566/tcp", "http")
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("LocalStack %s endpoint: %w", img, err)
	}
	return &Backend{
		Kind:             BackendLocalStack,
		Detail:           img,
		DynamoDBEndpoint: endpoint,
		SQSEndpoint:      endpoint,
		Region:           awstest.Region,
		AccessKeyID:      awstest.AccessKeyID,
		SecretAccessKey:  awstest.SecretAccessKey,
		stop: func(context.Context) error {
			return testcontainers.TerminateContainer(ctr)
		},
		logs: func(maxBytes int64) string { return containerLogs(ctr, maxBytes) },
	}, nil
}

func containerLogs(ctr testcontainers.Container, maxBytes int64) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(no LocalStack logs: %v)", err)
	}
	defer rc.Close()
	return "--- LocalStack log (tail) ---\n" + tailReader(rc, maxBytes)
}
