package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/handlers/forward"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

// setEnv points the process at the emulators and sets the given variables.
func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if v != nil {
		err = json.Unmarshal(body, v)
	}
	return resp.StatusCode, err
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The binary's wiring end to end: auto-provision, the handler chain
// store → audit → forward (500, then 200), health, metrics, and a clean exit
// when the run context ends (what SIGTERM does).
func TestRun(t *testing.T) {
	name := awstest.UniqueName("run")
	var mu sync.Mutex
	var forwarded []http.Header
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		forwarded = append(forwarded, r.Header.Clone())
		bodies = append(bodies, b)
		n := len(forwarded)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.Close)
	addr := freeAddr(t)
	setEnv(t, map[string]string{
		"WAHOOK_LEDGER_TABLE":       name + "-ledger",
		"WAHOOK_MESSAGES_TABLE":     name + "-messages",
		"WAHOOK_QUEUE_NAME":         name + "-q",
		"WAHOOK_AUTO_PROVISION":     "true",
		"WAHOOK_VISIBILITY_TIMEOUT": "2s",
		"WAHOOK_RECEIVE_WAIT":       "1s",
		"WAHOOK_PROCESSORS":         "2",
		"WAHOOK_HANDLERS":           "store,audit,forward",
		"WAHOOK_AUDIT_TABLE":        name + "-audit",
		"WAHOOK_FORWARD_URL":        hook.URL,
		"WAHOOK_FORWARD_SECRET":     "topsecret",
		"WAHOOK_HEALTH_ADDR":        addr,
		"WAHOOK_SHUTDOWN_TIMEOUT":   "2s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return")
		}
	})

	base := "http://" + addr
	waitFor(t, 30*time.Second, "/health", func() bool {
		code, _ := getJSON(base+"/health", nil)
		return code == http.StatusOK
	})

	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(name + "-q")})
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"id":"wamid.RUN","from":"15550001111","timestamp":"1700000000","text":{"body":"end to end"}}`
	body, err := envelope.FromEvent(webhook.Event{Key: webhook.MessageKey("wamid.RUN"), Kind: webhook.KindMessage,
		WAMID: "wamid.RUN", Customer: "15550001111", Timestamp: "1700000000", Raw: []byte(raw)}, time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}

	store, err := ledger.New(c.DynamoDB, name+"-ledger", ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var item ledger.Item
	waitFor(t, 15*time.Second, "the event to be done", func() bool {
		item, err = store.Get(context.Background(), "msg#wamid.RUN")
		return err == nil && item.State == ledger.StateDone
	})
	if item.Attempt != 2 {
		t.Errorf("done at attempt %d, want 2 (the forward's 500 retried)", item.Attempt)
	}

	mu.Lock()
	if len(forwarded) != 2 {
		t.Errorf("%d forwards, want 2", len(forwarded))
	}
	for i, h := range forwarded {
		if h.Get(forward.HeaderSignature) != forward.Sign([]byte("topsecret"), bodies[i]) ||
			h.Get(forward.HeaderIdempotencyKey) != "msg#wamid.RUN" || string(bodies[i]) != string(body) {
			t.Errorf("forward %d: headers %v body %s", i, h, bodies[i])
		}
	}
	mu.Unlock()

	get := func(table, keyName, key string) map[string]dbtypes.AttributeValue {
		out, err := c.DynamoDB.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]dbtypes.AttributeValue{keyName: &dbtypes.AttributeValueMemberS{Value: key}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	if msg := get(name+"-messages", "wamid", "wamid.RUN"); msg["text_body"] == nil ||
		msg["text_body"].(*dbtypes.AttributeValueMemberS).Value != "end to end" {
		t.Errorf("messages item %v", msg)
	}
	if a := get(name+"-audit", "pk", "msg#wamid.RUN"); a["invocations"] == nil ||
		a["invocations"].(*dbtypes.AttributeValueMemberN).Value != "2" {
		t.Errorf("audit item %v, want 2 invocations", a)
	}

	var detailed struct {
		Status     string `json:"status"`
		Components map[string]struct {
			Status string `json:"status"`
		} `json:"components"`
		Processors []struct {
			ID             string     `json:"id"`
			ProcessedCount int        `json:"processed_count"`
			ErrorsCount    int        `json:"errors_count"`
			LastPollAt     *time.Time `json:"last_poll_at"`
		} `json:"processors"`
		Breaker struct {
			State string `json:"state"`
		} `json:"breaker"`
	}
	if code, err := getJSON(base+"/health/detailed", &detailed); code != 200 || err != nil {
		t.Fatalf("/health/detailed: %d %v", code, err)
	}
	processed, errs := 0, 0
	for _, p := range detailed.Processors {
		processed += p.ProcessedCount
		errs += p.ErrorsCount
		if p.LastPollAt == nil || p.ID == "" {
			t.Errorf("processor %+v", p)
		}
	}
	if detailed.Status != "healthy" || len(detailed.Processors) != 2 || processed != 1 || errs != 1 ||
		detailed.Components["dynamodb"].Status != "connected" || detailed.Components["sqs"].Status != "connected" ||
		detailed.Breaker.State != "closed" {
		t.Errorf("/health/detailed: %+v", detailed)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wahook_worker_events_total{result="done"} 1`, `wahook_worker_events_total{result="retry"} 1`,
		"wahook_worker_handler_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
		done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of the cancel")
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Error("health server still answering after run returned")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	setEnv(t, map[string]string{"WAHOOK_PROCESSORS": "0"})
	err := run(t.Context(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_PROCESSORS") {
		t.Errorf("run: %v, want an error naming WAHOOK_PROCESSORS", err)
	}
}

func TestRedriveMaxReceiveCount(t *testing.T) {
	t.Parallel()
	for policy, want := range map[string]int{
		"": 0,
		`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"7"}`: 7,
		`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":10}`:  10,
	} {
		if got, err := redriveMaxReceiveCount(policy); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", policy, got, err, want)
		}
	}
	if _, err := redriveMaxReceiveCount(`{"maxReceiveCount":"x"}`); err == nil {
		t.Error("a non-numeric maxReceiveCount parsed")
	}
}
