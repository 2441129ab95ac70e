package pipeline

// Spans: one per event's admission and one per event's send, the send's
// context carried to the worker in the message's traceparent attribute.

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahook/wahook/shared/tracing"
)

// attrOutcome is what became of the event in this span.
const attrOutcome = attribute.Key("wahook.outcome")

func (o outcome) String() string {
	switch o {
	case queued:
		return "queued"
	case duplicate:
		return "duplicate"
	case tooLarge:
		return "rejected"
	case failed:
		return "failed"
	default:
		return "owned"
	}
}

// startAdmit starts the span of one event's admission.
func (p *Pipeline) startAdmit(ctx context.Context, it *item) (context.Context, trace.Span) {
	return p.opts.Tracer.Start(ctx, "admit", trace.WithAttributes(
		tracing.AttrEventKey.String(it.event.Key), tracing.AttrEventKind.String(string(it.event.Kind))))
}

// endAdmit ends an admission span with its outcome.
func endAdmit(span trace.Span, it *item) {
	span.SetAttributes(attrOutcome.String(it.outcome.String()))
	if it.outcome == failed {
		span.SetStatus(codes.Error, "not admitted")
	}
	span.End()
}

// startSend starts the producer span of one event's send and puts its
// context in the message's attributes.
func (p *Pipeline) startSend(ctx context.Context, it *item, attrs map[string]types.MessageAttributeValue) {
	var span trace.Span
	ctx, span = p.opts.Tracer.Start(ctx, "send "+p.queueName, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(p.queueAttrs...),
		trace.WithAttributes(semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend,
			tracing.AttrEventKey.String(it.event.Key), tracing.AttrEventKind.String(string(it.event.Kind))))
	tracing.InjectMessage(ctx, attrs)
	it.span = span
}

// endSends ends the send spans of a batch: the message id for those the
// queue took, an error for the others.
func endSends(batch []*item, ids map[*item]string, err error) {
	for _, it := range batch {
		if it.span == nil {
			continue
		}
		switch {
		case it.sent:
			it.span.SetAttributes(semconv.MessagingMessageID(ids[it]))
		case err != nil:
			it.span.RecordError(err)
			it.span.SetStatus(codes.Error, "send failed")
		default:
			it.span.RecordError(errors.New("the queue refused the entry"))
			it.span.SetStatus(codes.Error, "entry refused")
		}
		it.span.End()
		it.span = nil
	}
}

// messageID is the id SQS gave an entry.
func messageID(s types.SendMessageBatchResultEntry) string { return aws.ToString(s.MessageId) }
