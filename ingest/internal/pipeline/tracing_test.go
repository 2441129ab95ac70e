package pipeline_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahook/wahook/shared/tracing"
)

// TestTraces: a webhook gets a server span; each of its events an admit span
// and a producer send span under it; the queued message carries the send
// span's context as its traceparent attribute; a duplicate is admitted
// (outcome duplicate) but not sent; no span carries the message text.
func TestTraces(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := newStack(t, options{tracer: tp})

	body := messages("trace", 3)
	if r := s.post(body); r.code != http.StatusOK || r.summary.Queued != 3 {
		t.Fatalf("first POST: %d %+v, want 200 with 3 queued", r.code, r.summary)
	}
	msgs := s.drain()
	if len(msgs) != 3 {
		t.Fatalf("queue holds %d messages, want 3", len(msgs))
	}
	first := exp.GetSpans().Snapshots()
	exp.Reset()
	if r := s.post(body); r.code != http.StatusOK || r.summary.Duplicates != 3 {
		t.Fatalf("second POST: %d %+v, want 200 with 3 duplicates", r.code, r.summary)
	}
	second := exp.GetSpans().Snapshots()

	// The first request: one server span, and under it 3 admits and 3 sends.
	server := only(t, first, "POST /webhook")
	if server.SpanKind() != trace.SpanKindServer || server.Parent().IsValid() {
		t.Fatalf("request span kind %v parent %v, want a server root span", server.SpanKind(), server.Parent())
	}
	if got := attr(server, "http.response.status_code"); got.AsInt64() != 200 {
		t.Fatalf("request span status code %v, want 200", got)
	}
	sends := map[string]sdktrace.ReadOnlySpan{} // by message id
	admits := 0
	for _, sp := range first {
		switch {
		case sp.Name() == "admit":
			admits++
			if sp.Parent().SpanID() != server.SpanContext().SpanID() || attr(sp, tracing.AttrEventKey).AsString() == "" {
				t.Fatalf("admit span parent %v key %q, want the request span and a key", sp.Parent(), attr(sp, tracing.AttrEventKey).AsString())
			}
		case strings.HasPrefix(sp.Name(), "send "):
			if sp.SpanKind() != trace.SpanKindProducer || sp.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Fatalf("send span kind %v parent %v, want a producer under the request span", sp.SpanKind(), sp.Parent())
			}
			for k, want := range map[attribute.Key]string{"messaging.system": "aws_sqs", "messaging.operation.type": "send",
				"messaging.destination.name": s.queueURL[strings.LastIndexByte(s.queueURL, '/')+1:]} {
				if got := attr(sp, k).AsString(); got != want {
					t.Fatalf("send span %s = %q, want %q", k, got, want)
				}
			}
			sends[attr(sp, "messaging.message.id").AsString()] = sp
		}
	}
	if admits != 3 || len(sends) != 3 {
		t.Fatalf("first request: %d admit and %d send spans, want 3 and 3", admits, len(sends))
	}
	for _, m := range msgs {
		send, ok := sends[aws.ToString(m.MessageId)]
		if !ok {
			t.Fatalf("message %s has no send span with its id", aws.ToString(m.MessageId))
		}
		sc := trace.SpanContextFromContext(tracing.ExtractMessage(context.Background(), m.MessageAttributes))
		if sc.TraceID() != server.SpanContext().TraceID() || sc.SpanID() != send.SpanContext().SpanID() {
			t.Fatalf("message %s traceparent %v, want the send span %v", aws.ToString(m.MessageId), sc, send.SpanContext())
		}
		if keyOf(m.MessageAttributes) != attr(send, tracing.AttrEventKey).AsString() {
			t.Fatalf("send span key %q, message key %q", attr(send, tracing.AttrEventKey).AsString(), keyOf(m.MessageAttributes))
		}
	}

	// The duplicate request: admits with outcome duplicate, no sends.
	dups := 0
	for _, sp := range second {
		if strings.HasPrefix(sp.Name(), "send ") {
			t.Fatalf("duplicate request sent %s", sp.Name())
		}
		if sp.Name() == "admit" && attr(sp, "wahook.outcome").AsString() == "duplicate" {
			dups++
		}
	}
	if dups != 3 {
		t.Fatalf("duplicate request: %d admit spans with outcome duplicate, want 3", dups)
	}
	noText(t, append(first, second...), "hello ")
}

func only(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() == name {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1", len(found), name)
	}
	return found[0]
}

func attr(sp sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range sp.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// noText fails when any span attribute or event carries text.
func noText(t *testing.T, spans []sdktrace.ReadOnlySpan, text string) {
	t.Helper()
	for _, sp := range spans {
		for _, kv := range sp.Attributes() {
			if strings.Contains(kv.Value.Emit(), text) {
				t.Fatalf("span %s attribute %s carries message text: %q", sp.Name(), kv.Key, kv.Value.Emit())
			}
		}
		for _, ev := range sp.Events() {
			for _, kv := range ev.Attributes {
				if strings.Contains(kv.Value.Emit(), text) {
					t.Fatalf("span %s event %s carries message text", sp.Name(), ev.Name)
				}
			}
		}
	}
}
