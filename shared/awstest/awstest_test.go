package awstest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/awstest"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

func TestEmulatorsAnswer(t *testing.T) {
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DynamoDB.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatal(err)
	}
	out, err := c.SQS.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: ptr(awstest.UniqueName("smoke"))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*out.QueueUrl, emu.SQSEndpoint+"/"+awstest.AccountID+"/") {
		t.Errorf("QueueUrl %q not under %s/%s/", *out.QueueUrl, emu.SQSEndpoint, awstest.AccountID)
	}
	t.Logf("startup: dynalite %v, %s %v; queue URL %s", emu.StartupDynamoDB, emu.SQSImpl, emu.StartupSQS, *out.QueueUrl)
}

// A second, private pair: Start, Pause/Resume, Stop (idempotent), processes gone.
func TestStartStop(t *testing.T) {
	if _, ok := awstest.FromEnv(); ok {
		t.Skip("endpoints from the environment")
	}
	began := time.Now()
	e, err := awstest.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v (dynalite %v, %s %v)", time.Since(began), e.StartupDynamoDB, e.SQSImpl, e.StartupSQS)
	c, err := e.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// Pause: calls hang until their context ends; Resume: they work again.
	if err := e.Pause(awstest.DynamoDB); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = c.DynamoDB.ListTables(ctx, &dynamodb.ListTablesInput{})
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ListTables on paused dynalite: err = %v, want deadline exceeded", err)
	}
	if err := e.Resume(awstest.DynamoDB); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DynamoDB.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("after Resume: %v", err)
	}

	pids := e.PIDs()
	dir := e.LogDir
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for svc, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s emulator (pid %d) still there after Stop: %v", svc, pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("log dir %s not removed: %v", dir, err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(awstest.EnvDynamoDBEndpoint, "http://127.0.0.1:1")
	t.Setenv(awstest.EnvSQSEndpoint, "http://127.0.0.1:2")
	e, ok := awstest.FromEnv()
	if !ok || e.DynamoDBEndpoint != "http://127.0.0.1:1" || e.SQSEndpoint != "http://127.0.0.1:2" {
		t.Fatalf("FromEnv = %+v, %v", e, ok)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(awstest.EnvSQSEndpoint, "")
	if _, ok := awstest.FromEnv(); ok {
		t.Fatal("FromEnv with one endpoint only should be false")
	}
}

func TestStartWithoutInstall(t *testing.T) {
	t.Setenv(awstest.EnvToolsDir, t.TempDir())
	_, err := awstest.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "install.sh") {
		t.Fatalf("err = %v, want a hint to run install.sh", err)
	}
}

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := awstest.UniqueName("Some test/with spaces")
		if seen[n] {
			t.Fatalf("duplicate %s", n)
		}
		seen[n] = true
		if len(n) > 64 || strings.ContainsAny(n, "/ ") {
			t.Fatalf("bad name %q", n)
		}
	}
}

func ptr[T any](v T) *T { return &v }
