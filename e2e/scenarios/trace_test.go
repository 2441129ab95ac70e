package scenarios

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wahook/wahook/e2e/harness"
)

// One event's spans form one trace across both processes: the real ingest and
// worker export over OTLP/HTTP to an endpoint the test serves, and the
// worker's spans continue the ingest's through the message's traceparent.
func TestTraceAcrossProcesses(t *testing.T) {
	t.Parallel()
	col := harness.NewCollector(t)
	s := harness.NewStack(t, harness.StackOptions{Env: col.Env()})
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{})
	ctx := t.Context()

	const text = "trace canary: never in a span"
	g := harness.NewGen(seed(t))
	msg := g.Message()
	msg.Type, msg.Text = harness.TypeText, text
	p := g.Payload([]harness.Message{msg}, nil)
	key := msg.Key()
	if r := s.Client().Post(ctx, p.JSON()); !r.OK() {
		t.Fatalf("POST: %v", r)
	}
	s.AwaitSettled(p.Keys(), 60*time.Second)

	want := []string{"POST /webhook", "admit", "send " + s.QueueName, "process " + s.QueueName,
		"claim", "handler store", "complete", "delete " + s.QueueName}
	// spans: the event's trace, by name. Should SQS deliver the message
	// twice (a redelivery the claim turns into a delete), the process span
	// taken is the one whose claim completed, and its children beside it.
	var spans map[string]harness.Span
	harness.Eventually(t, 30*time.Second, "the event's spans from both processes", func(context.Context) error {
		traceID := ""
		for _, sp := range col.Spans() {
			if sp.Attributes["wahook.event.key"] == key {
				traceID = sp.TraceID
			}
		}
		if traceID == "" {
			return fmt.Errorf("no span with wahook.event.key=%s among %d", key, len(col.Spans()))
		}
		trace := col.Trace(traceID)
		processID := ""
		for _, sp := range trace {
			if sp.Name == "complete" {
				processID = sp.ParentID
			}
		}
		spans = map[string]harness.Span{}
		for _, sp := range trace {
			if strings.HasPrefix(sp.Name, "process ") && sp.SpanID != processID {
				continue
			}
			if sp.Service == "wahook-worker" && !strings.HasPrefix(sp.Name, "process ") && sp.ParentID != processID {
				continue
			}
			if _, dup := spans[sp.Name]; dup {
				return fmt.Errorf("two %q spans in trace %s", sp.Name, traceID)
			}
			spans[sp.Name] = sp
		}
		for _, name := range want {
			if _, ok := spans[name]; !ok {
				return fmt.Errorf("trace %s has no %q span yet (has %d spans)", traceID, name, len(trace))
			}
		}
		return nil
	})

	server, send, process := spans["POST /webhook"], spans["send "+s.QueueName], spans["process "+s.QueueName]
	check := func(name, service, parent string) harness.Span {
		t.Helper()
		sp := spans[name]
		if sp.Service != service || sp.ParentID != parent {
			t.Errorf("%q: service %q parent %q, want %q under %q", name, sp.Service, sp.ParentID, service, parent)
		}
		return sp
	}
	check("POST /webhook", "wahook-ingest", "")
	check("admit", "wahook-ingest", server.SpanID)
	check("send "+s.QueueName, "wahook-ingest", server.SpanID)
	check("process "+s.QueueName, "wahook-worker", send.SpanID) // across the queue
	for _, name := range []string{"claim", "handler store", "complete", "delete " + s.QueueName} {
		check(name, "wahook-worker", process.SpanID)
	}
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || send.Kind != tracepb.Span_SPAN_KIND_PRODUCER ||
		process.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("kinds: request %v, send %v, process %v; want server, producer, consumer", server.Kind, send.Kind, process.Kind)
	}
	if len(process.Links) != 1 || process.Links[0] != send.SpanID {
		t.Errorf("process span links %v, want the send span %s", process.Links, send.SpanID)
	}
	if process.StartNano < send.EndNano-uint64(time.Second) || spans["complete"].StartNano < spans["handler store"].EndNano {
		t.Errorf("spans out of order: send ends %d, process starts %d; handler ends %d, complete starts %d",
			send.EndNano, process.StartNano, spans["handler store"].EndNano, spans["complete"].StartNano)
	}
	for _, c := range []struct{ span, attr, want string }{
		{"send " + s.QueueName, "messaging.system", "aws_sqs"},
		{"send " + s.QueueName, "messaging.destination.name", s.QueueName},
		{"send " + s.QueueName, "messaging.operation.type", "send"},
		{"send " + s.QueueName, "wahook.event.key", key},
		{"process " + s.QueueName, "messaging.system", "aws_sqs"},
		{"process " + s.QueueName, "messaging.destination.name", s.QueueName},
		{"process " + s.QueueName, "messaging.operation.type", "process"},
		{"process " + s.QueueName, "messaging.message.id", send.Attributes["messaging.message.id"]},
		{"process " + s.QueueName, "wahook.event.key", key},
		{"process " + s.QueueName, "wahook.attempt", "1"},
		{"admit", "wahook.event.key", key},
		{"POST /webhook", "http.response.status_code", "200"},
	} {
		if got := spans[c.span].Attributes[c.attr]; got != c.want || got == "" {
			t.Errorf("%q %s = %q, want %q", c.span, c.attr, got, c.want)
		}
	}
	for _, sp := range col.Spans() {
		for k, v := range sp.Attributes {
			if strings.Contains(v, "canary") {
				t.Errorf("%s span %q attribute %s carries the message text: %q", sp.Service, sp.Name, k, v)
			}
		}
		for _, ev := range sp.Events {
			if strings.Contains(ev, "canary") {
				t.Errorf("%s span %q event carries the message text: %q", sp.Service, sp.Name, ev)
			}
		}
	}
}
