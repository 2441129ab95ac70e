package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahook/wahook/shared/tracing"
	"github.com/wahook/wahook/worker/processor"
)

// TestTraces: a message whose traceparent names a producer span is handled
// under a consumer span that is that span's child (same trace) and links to
// it; claim, each traced handler, complete and delete are its children; the
// spans carry the key, the attempt and the message id, never the text.
func TestTraces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10*time.Second)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	// What ingest does: a producer span, its context in the message.
	ctx, send := tp.Tracer("ingest").Start(t.Context(), "send", trace.WithSpanKind(trace.SpanKindProducer))
	attrs := map[string]sqstypes.MessageAttributeValue{}
	tracing.InjectMessage(ctx, attrs)
	send.End()
	out, err := e.clients.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &e.queueURL,
		MessageBody: aws.String(string(envelopeBody(t, "traced-1"))), MessageAttributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	msgID := aws.ToString(out.MessageId)

	var forwarded trace.SpanContext
	h := processor.Chain(
		processor.Traced("store", processor.HandlerFunc(func(context.Context, processor.Event) error { return nil })),
		processor.Traced("forward", processor.HandlerFunc(func(ctx context.Context, _ processor.Event) error {
			forwarded = trace.SpanContextFromContext(ctx)
			return nil
		})),
	)
	e.start(processor.Options{}, h, func(d *processor.Deps) { d.Tracer = tp.Tracer("worker") })

	byName := map[string]sdktrace.ReadOnlySpan{}
	eventually(t, 20*time.Second, "the message's delete span", func() bool {
		for _, sp := range exp.GetSpans().Snapshots() {
			byName[spanKey(sp.Name())] = sp
		}
		_, ok := byName["delete"]
		return ok
	})
	process, ok := byName["process"]
	if !ok {
		t.Fatalf("no process span; spans %v", names(exp.GetSpans()))
	}
	sendCtx := send.SpanContext()
	if process.SpanKind() != trace.SpanKindConsumer || process.Parent().SpanID() != sendCtx.SpanID() ||
		process.SpanContext().TraceID() != sendCtx.TraceID() {
		t.Fatalf("process span kind %v parent %v trace %v, want a consumer child of the send span %v",
			process.SpanKind(), process.Parent(), process.SpanContext().TraceID(), sendCtx)
	}
	if len(process.Links()) != 1 || process.Links()[0].SpanContext.SpanID() != sendCtx.SpanID() {
		t.Fatalf("process span links %v, want one to the send span", process.Links())
	}
	for k, want := range map[attribute.Key]string{
		"messaging.system": "aws_sqs", "messaging.operation.type": "process", "messaging.message.id": msgID,
		tracing.AttrEventKey: "msg#traced-1",
	} {
		if got := attrOf(process, k).Emit(); got != want {
			t.Fatalf("process span %s = %q, want %q", k, got, want)
		}
	}
	if got := attrOf(process, tracing.AttrAttempt).AsInt64(); got != 1 {
		t.Fatalf("process span attempt %d, want 1", got)
	}
	for _, name := range []string{"claim", "handler store", "handler forward", "complete", "delete"} {
		sp, ok := byName[name]
		if !ok {
			t.Fatalf("no %q span; spans %v", name, names(exp.GetSpans()))
		}
		if sp.Parent().SpanID() != process.SpanContext().SpanID() || sp.SpanContext().TraceID() != sendCtx.TraceID() {
			t.Fatalf("%s span parent %v, want the process span", name, sp.Parent())
		}
	}
	if byName["handler forward"].SpanContext().SpanID() != forwarded.SpanID() {
		t.Fatalf("the forward handler ran under %v, want its own span %v", forwarded, byName["handler forward"].SpanContext())
	}
	if !byName["claim"].EndTime().Before(byName["handler store"].StartTime()) ||
		!byName["handler forward"].EndTime().Before(byName["complete"].StartTime()) {
		t.Fatal("spans out of order: want claim, handlers, complete")
	}
	for _, sp := range exp.GetSpans().Snapshots() {
		for _, kv := range sp.Attributes() {
			if strings.Contains(kv.Value.Emit(), `"body"`) || kv.Value.Emit() == "hi" {
				t.Fatalf("span %s attribute %s carries message text", sp.Name(), kv.Key)
			}
		}
	}
}

// spanKey drops the queue name from "process <queue>" and "delete <queue>".
func spanKey(name string) string {
	if op, _, ok := strings.Cut(name, " "); ok && (op == "process" || op == "delete") {
		return op
	}
	return name
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name)
	}
	return out
}

func attrOf(sp sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range sp.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}
