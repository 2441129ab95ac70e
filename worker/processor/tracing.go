package processor

// Spans: one per message (a consumer span, child of and linked to the ingest's
// send span whose context the message's traceparent attribute carries), and
// under it one per claim, handler, completion and delete.

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahook/wahook/shared/tracing"
)

// tracerName is the instrumentation scope of the processors' spans.
const tracerName = "github.com/wahook/wahook/worker/processor"

// attrReceiveCount is SQS's ApproximateReceiveCount of the message.
const attrReceiveCount = attribute.Key("wahook.receive_count")

// startProcess starts the span of one message's handling on ctx.
func (pr *processor) startProcess(ctx context.Context, m sqstypes.Message) (context.Context, trace.Span) {
	queue := tracing.QueueAttributes(pr.opts.QueueURL)
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(queue...),
		trace.WithAttributes(semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingMessageID(aws.ToString(m.MessageId)), attrReceiveCount.Int(receiveCount(m))),
	}
	parent := tracing.ExtractMessage(ctx, m.MessageAttributes)
	if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return pr.deps.Tracer.Start(parent, "process "+queue[1].Value.AsString(), opts...)
}

// startSpan starts a child span of ctx's span for one step of a message.
func (pr *processor) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	return pr.deps.Tracer.Start(ctx, name)
}

// endSpan ends a step's span, recording err (ours, from the ledger or the
// queue: it never quotes a message).
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "failed")
	}
	span.End()
}

// Traced gives h a span of its own named "handler <name>", a child of the
// message's span, so that a chain shows where an event spent its time. A
// handler's error is recorded by type only: its text may quote the message.
func Traced(name string, h Handler) Handler {
	spanName := "handler " + name
	return HandlerFunc(func(ctx context.Context, ev Event) error {
		tracer := trace.SpanFromContext(ctx).TracerProvider().Tracer(tracerName)
		ctx, span := tracer.Start(ctx, spanName)
		defer span.End()
		err := h.Handle(ctx, ev)
		if err != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String(fmt.Sprintf("%T", err)),
				attribute.Bool("wahook.permanent", IsPermanent(err)))
			span.SetStatus(codes.Error, "handler error")
		}
		return err
	})
}

// startDelete starts the span of one message's delete, a child of the
// message's span in ctx; it ends when the batched delete answers.
func (pr *processor) startDelete(ctx context.Context) (context.Context, trace.Span) {
	queue := tracing.QueueAttributes(pr.opts.QueueURL)
	return pr.deps.Tracer.Start(ctx, "delete "+queue[1].Value.AsString(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(queue...),
		trace.WithAttributes(semconv.MessagingOperationName("delete"), semconv.MessagingOperationTypeSettle))
}

// endDelete ends a delete's span, when it has one.
func endDelete(span trace.Span, err error) {
	if span != nil {
		endSpan(span, err)
	}
}
