package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wahook/wahook/ingest/internal/deadline"
	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/metrics/metricstest"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/ingest/internal/signature"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

const secret = "pipeline-test-secret"

// options shape one test's stack; zero values take the service defaults.
type options struct {
	fifo         bool
	resendWindow time.Duration
	inFlightWait time.Duration
	concurrency  int
	sendTimeout  time.Duration
	tracer       trace.TracerProvider // default: no tracing
}

// stack is one test's ingest: its own table and queue on the shared emulators,
// the real ledger and SQS client behind a recording (and fault-injecting) queue,
// the real pipeline, and the HTTP layer on an httptest server.
type stack struct {
	t        *testing.T
	clients  *awsclient.Clients
	store    *ledger.Store
	queue    *recordingQueue
	queueURL string
	dlqURL   string
	reg      *prometheus.Registry
	pipe     *pipeline.Pipeline
	url      string
	log      *zap.Logger
}

func newStack(t *testing.T, o options) *stack {
	t.Helper()
	ctx := t.Context()
	clients, err := emu.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	spec := resources.Spec{
		LedgerTable:       awstest.UniqueName("ingest-ledger"),
		QueueName:         awstest.UniqueName("ingest-events"),
		VisibilityTimeout: 60 * time.Second,
		MaxReceiveCount:   5,
	}
	spec.DLQName = spec.QueueName + "-dlq"
	if o.fifo {
		spec.QueueName += ".fifo"
		spec.DLQName += ".fifo"
	}
	prov, err := resources.Ensure(ctx, clients.DynamoDB, clients.SQS, spec, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = clients.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(spec.LedgerTable)})
		_, _ = clients.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(prov.QueueURL)})
		_, _ = clients.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(prov.DLQURL)})
	})

	store, err := ledger.New(deadline.DynamoDB(clients.DynamoDB, 5*time.Second), spec.LedgerTable, ledger.Options{
		ResendWindow: o.resendWindow, InFlightWait: o.inFlightWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	q := &recordingQueue{next: clients.SQS}
	if o.tracer == nil {
		o.tracer = noop.NewTracerProvider()
	}
	pipe, err := pipeline.New(store, q, m, pipeline.Options{QueueURL: prov.QueueURL, Concurrency: o.concurrency,
		RenewEvery: o.resendWindow / 3, SendTimeout: o.sendTimeout,
		DeadLetterURL: prov.DLQURL, DeadLetters: clients.SQS, Tracer: o.tracer.Tracer("test")})
	if err != nil {
		t.Fatal(err)
	}
	checker := health.NewChecker(2*time.Second, map[string]health.Check{
		"dynamodb": health.DynamoDB(clients.DynamoDB, spec.LedgerTable),
		"sqs":      health.SQS(clients.SQS, prov.QueueURL),
	})
	h, err := server.New(server.Options{AppSecret: secret}, server.Deps{
		Processor: pipe, Checker: checker, Metrics: m, Gatherer: reg, Log: log, Tracer: o.tracer.Tracer("test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &stack{t: t, clients: clients, store: store, queue: q, queueURL: prov.QueueURL, dlqURL: prov.DLQURL, reg: reg, pipe: pipe, url: srv.URL, log: log}
}

// recordingQueue wraps the real SQS client: it records every SendMessageBatch
// input and lets a test fail calls or entries.
type recordingQueue struct {
	next pipeline.Queue

	mu     sync.Mutex
	inputs []*sqs.SendMessageBatchInput
	// fault, when set, decides each call: return a non-nil error to fail the
	// whole call before it reaches SQS; refuse lists keys whose entries are
	// held back and reported in Failed.
	fault func(ctx context.Context, in *sqs.SendMessageBatchInput) (refuse []string, err error)
}

func (q *recordingQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.mu.Lock()
	q.inputs = append(q.inputs, in)
	fault := q.fault
	q.mu.Unlock()
	var refuse []string
	if fault != nil {
		var err error
		if refuse, err = fault(ctx, in); err != nil {
			return nil, err
		}
	}
	send := *in
	send.Entries = nil
	var failed []sqstypes.BatchResultErrorEntry
	for _, e := range in.Entries {
		if slices.Contains(refuse, keyOf(e.MessageAttributes)) {
			failed = append(failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"),
				Message: aws.String("injected"), SenderFault: false})
			continue
		}
		send.Entries = append(send.Entries, e)
	}
	out := &sqs.SendMessageBatchOutput{}
	if len(send.Entries) > 0 {
		var err error
		if out, err = q.next.SendMessageBatch(ctx, &send, opts...); err != nil {
			return nil, err
		}
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func (q *recordingQueue) setFault(f func(ctx context.Context, in *sqs.SendMessageBatchInput) ([]string, error)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fault = f
}

func (q *recordingQueue) calls() []*sqs.SendMessageBatchInput {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.inputs)
}

func keyOf(attrs map[string]sqstypes.MessageAttributeValue) string {
	return aws.ToString(attrs[envelope.AttrKey].StringValue)
}

// reply is a POST /webhook answer.
type reply struct {
	code    int
	summary server.Summary
}

func (s *stack) post(body string) reply {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+server.PathWebhook, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(signature.Header, signature.Sign([]byte(secret), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := reply{code: resp.StatusCode}
	if err := json.Unmarshal(raw, &r.summary); err != nil {
		s.t.Fatalf("POST /webhook: status %d, body %q: %v", resp.StatusCode, raw, err)
	}
	return r
}

// drain receives every message in the queue (hiding them for a minute) until
// a one-second poll finds nothing more. (The SDK cannot ask for a 0s poll: a
// zero WaitTimeSeconds is not sent, and the queue's default 20s applies.)
func (s *stack) drain() []sqstypes.Message {
	s.t.Helper()
	var all []sqstypes.Message
	for {
		out, err := s.clients.SQS.ReceiveMessage(s.t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.queueURL),
			MaxNumberOfMessages:         10,
			WaitTimeSeconds:             1,
			VisibilityTimeout:           60,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			s.t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
	}
}

// keys are the `key` attributes of msgs, sorted.
func keys(msgs []sqstypes.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, keyOf(m.MessageAttributes))
	}
	slices.Sort(out)
	return out
}

// state is the ledger state of key ("" when there is no item).
func (s *stack) state(key string) ledger.State {
	s.t.Helper()
	item, err := s.store.Get(s.t.Context(), key)
	if err != nil {
		if isNotFound(err) {
			return ""
		}
		s.t.Fatalf("get %s: %v", key, err)
	}
	return item.State
}

func (s *stack) metric(name string, labels map[string]string) float64 {
	s.t.Helper()
	return metricstest.Value(s.t, s.reg, name, labels)
}

// messages is a webhook body with n inbound messages wamid-<prefix>-<i>.
func messages(prefix string, n int) string {
	var msgs []string
	for i := range n {
		msgs = append(msgs, fmt.Sprintf(`{"id":"wamid-%s-%d","from":"15550001%03d","timestamp":"1700000000","type":"text","text":{"body":"hello %d"}}`,
			prefix, i, i%7, i))
	}
	return `{"object":"whatsapp_business_account","entry":[{"id":"waba-1","changes":[{"field":"messages","value":{` +
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"pn-1"},` +
		`"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`
}

// eventually waits until cond holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return b.String()
}

var errInjected = errors.New("injected SQS outage")

func isNotFound(err error) bool { return errors.Is(err, ledger.ErrNotFound) }

// pipelineWith is s's pipeline over another ledger; its metrics go to s.reg's
// twin registry (not asserted).
func pipelineWith(t *testing.T, s *stack, l pipeline.Ledger) *pipeline.Pipeline {
	t.Helper()
	return pipelineOpts(t, s, l, pipeline.Options{})
}

// pipelineOpts is pipelineWith with options (the stack's queue URL is set).
func pipelineOpts(t *testing.T, s *stack, l pipeline.Ledger, o pipeline.Options) *pipeline.Pipeline {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o.QueueURL = s.queueURL
	p, err := pipeline.New(l, s.queue, m, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
