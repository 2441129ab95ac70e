package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/webhook/webhooktest"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

// The seed's Scenario 1 request, exactly as its curl sends it (no signature:
// this instance runs with WAHOOK_INSECURE_SKIP_SIGNATURE=true).
const seedBody = webhooktest.SeedScenario1

// instance is one serve() running against the emulators, with its own table
// and queue names.
type instance struct {
	base    string
	cfg     Config
	logs    *observer.ObservedLogs
	stop    chan os.Signal
	done    chan error
	stopped bool
}

func startServe(t *testing.T, env map[string]string) *instance {
	t.Helper()
	ledgerTable, queueName := awstest.UniqueName("serve-ledger"), awstest.UniqueName("serve-events")
	messagesTable := awstest.UniqueName("serve-messages")
	vars := map[string]string{
		"WAHOOK_HTTP_ADDR":        "127.0.0.1:0",
		"WAHOOK_AUTO_PROVISION":   "true",
		"WAHOOK_LEDGER_TABLE":     ledgerTable,
		"WAHOOK_MESSAGES_TABLE":   messagesTable,
		"WAHOOK_QUEUE_NAME":       queueName,
		"WAHOOK_SHUTDOWN_TIMEOUT": "5s",
	}
	maps.Copy(vars, env)
	cfg, err := config.LoadFrom[Config](vars)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, table := range []string{ledgerTable, messagesTable} {
			_, _ = clients.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		}
		for _, q := range []string{queueName, cfg.DeadLetterName()} {
			if out, err := clients.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q)}); err == nil {
				_, _ = clients.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
			}
		}
	})

	core, logs := observer.New(zapcore.DebugLevel)
	in := &instance{cfg: cfg, logs: logs, stop: make(chan os.Signal, 1), done: make(chan error, 1)}
	addrs := make(chan net.Addr, 1)
	go func() {
		in.done <- serve(t.Context(), zap.New(core), cfg, emu.Options(), in.stop, func(a net.Addr) { addrs <- a })
	}()
	select {
	case a := <-addrs:
		in.base = "http://" + a.String()
	case err := <-in.done:
		t.Fatalf("serve returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen within 30s")
	}
	t.Cleanup(func() {
		if !in.stopped {
			in.stop <- syscall.SIGTERM
			<-in.done
		}
	})
	return in
}

// shutdown sends SIGTERM and waits for serve to return.
func (in *instance) shutdown(t *testing.T) error {
	t.Helper()
	in.stop <- syscall.SIGTERM
	in.stopped = true
	select {
	case err := <-in.done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
		return nil
	}
}

// TestServe runs the real wiring against the emulators: auto-provision, the
// seed's Scenario 1 twice, the handshake, health, metrics, and a graceful stop.
func TestServe(t *testing.T) {
	t.Parallel()
	const verifyToken = "verify-token-do-not-log"
	in := startServe(t, map[string]string{
		"WAHOOK_INSECURE_SKIP_SIGNATURE": "true",
		"WAHOOK_VERIFY_TOKEN":            verifyToken,
	})
	base, logs, queueName := in.base, in.logs, in.cfg.QueueName
	clients, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	if n := len(logs.FilterMessageSnippet("signatures are NOT verified").All()); n != 1 {
		t.Errorf("%d insecure-mode warnings at start, want 1", n)
	}

	for i, want := range []string{`"queued":1`, `"duplicates":1`} {
		code, body := call(t, http.MethodPost, base+"/webhook", seedBody)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("POST %d: %d %s, want 200 with %s", i+1, code, body, want)
		}
	}
	out, err := clients.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(queueName)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := clients.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: out.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 1 || aws.ToString(got.Messages[0].MessageAttributes["key"].StringValue) != "msg#test_msg_001" {
		t.Errorf("queue holds %d messages (%+v), want msg#test_msg_001 once", len(got.Messages), got.Messages)
	}

	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"8675309"}}
	if code, body := call(t, http.MethodGet, base+"/webhook?"+q.Encode(), ""); code != http.StatusOK || body != "8675309" {
		t.Errorf("handshake: %d %q", code, body)
	}

	code, body := call(t, http.MethodGet, base+"/health/detailed", "")
	var rep health.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != http.StatusOK ||
		rep.Components["dynamodb"].Status != health.Connected || rep.Components["sqs"].Status != health.Connected {
		t.Errorf("/health/detailed: %d %s (%v)", code, body, err)
	}
	if code, body := call(t, http.MethodGet, base+"/metrics", ""); code != http.StatusOK ||
		!strings.Contains(body, "wahook_ingest_duplicates_total 1") ||
		!strings.Contains(body, `wahook_ingest_events_total{kind="message",result="queued"} 1`) {
		t.Errorf("/metrics: %d, duplicate or queued count missing", code)
	}

	if err := in.shutdown(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Error("still listening after shutdown")
	}

	for _, l := range logs.All() {
		line := l.Message
		for k, v := range l.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		if strings.Contains(line, verifyToken) {
			t.Errorf("a log line shows the verify token: %s", line)
		}
		if l.Message == "request" && l.ContextMap()["request_id"] == nil {
			t.Errorf("access log line without request id: %v", l.ContextMap())
		}
	}
}

func toString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func call(t *testing.T, method, rawURL, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// run refuses to start without an app secret, before touching AWS.
func TestRunRefusesWithoutAppSecret(t *testing.T) {
	t.Setenv("WAHOOK_APP_SECRET", "")
	t.Setenv("WAHOOK_INSECURE_SKIP_SIGNATURE", "false")
	err := run(t.Context(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_APP_SECRET") {
		t.Fatalf("run: %v, want an error naming WAHOOK_APP_SECRET", err)
	}
}

// A request in flight when SIGTERM arrives is finished and answered before
// serve returns; new connections are refused meanwhile. Not parallel: it
// freezes the DynamoDB emulator to hold the request in flight.
func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	in := startServe(t, map[string]string{"WAHOOK_INSECURE_SKIP_SIGNATURE": "true", "WAHOOK_BACKEND_TIMEOUT": "20s"})
	if err := emu.Pause(awstest.DynamoDB); err != nil {
		t.Skipf("cannot freeze the DynamoDB emulator: %v", err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := emu.Resume(awstest.DynamoDB); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(resume)

	type answer struct {
		code int
		body string
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, in.base+"/webhook", strings.NewReader(seedBody))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{code: resp.StatusCode, body: string(b)}
	}()
	awaitMetric(t, in.base, "wahook_ingest_webhook_requests_in_flight 1")

	in.stop <- syscall.SIGTERM
	in.stopped = true
	addr := strings.TrimPrefix(in.base, "http://")
	await(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-in.done:
		t.Fatalf("serve returned (%v) with a request in flight", err)
	default:
	}

	resume()
	a := <-answered
	if a.code != http.StatusOK || !strings.Contains(a.body, `"queued":1`) {
		t.Errorf("in-flight request: %d %s, want 200 with one queued", a.code, a.body)
	}
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the in-flight request finished")
	}
}

// await polls cond until it holds, failing after 10s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func awaitMetric(t *testing.T, base, line string) {
	t.Helper()
	await(t, line, func() bool {
		_, body := call(t, http.MethodGet, base+"/metrics", "")
		return strings.Contains(body, line)
	})
}
