package tracing

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// AttrTraceparent is the SQS message attribute (and the HTTP header) that
// carries the W3C trace context. Only traceparent travels: SQS allows ten
// message attributes, and tracestate is unbounded vendor data.
const AttrTraceparent = "traceparent"

// TraceparentBytes is what a traceparent attribute counts against SQS's
// message size limit: its name, data type and a version-00 value.
const TraceparentBytes = len(AttrTraceparent) + len("String") + len("00-") + 32 + 1 + 16 + 1 + 2

// InjectMessage sets the traceparent attribute of ctx's span on attrs; it sets
// nothing when ctx carries no valid span (tracing off).
func InjectMessage(ctx context.Context, attrs map[string]sqstypes.MessageAttributeValue) {
	Propagator.Inject(ctx, messageCarrier(attrs))
}

// ExtractMessage returns ctx with the remote span context of the message's
// traceparent attribute, when it has a valid one.
func ExtractMessage(ctx context.Context, attrs map[string]sqstypes.MessageAttributeValue) context.Context {
	return Propagator.Extract(ctx, messageCarrier(attrs))
}

// messageCarrier adapts SQS message attributes to propagation.TextMapCarrier.
type messageCarrier map[string]sqstypes.MessageAttributeValue

func (c messageCarrier) Get(key string) string {
	if key != AttrTraceparent {
		return ""
	}
	v, ok := c[AttrTraceparent]
	if !ok || aws.ToString(v.DataType) != "String" {
		return ""
	}
	return aws.ToString(v.StringValue)
}

func (c messageCarrier) Set(key, value string) {
	if key != AttrTraceparent || value == "" {
		return
	}
	c[AttrTraceparent] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(value)}
}

func (c messageCarrier) Keys() []string { return []string{AttrTraceparent} }

// Span attributes both services put on their spans: the messaging semantic
// conventions, plus wahook's own event key and attempt. Never message text.
const (
	AttrEventKey  = attribute.Key("wahook.event.key")
	AttrEventKind = attribute.Key("wahook.event.kind")
	AttrAttempt   = attribute.Key("wahook.attempt")
)

// QueueAttributes are the messaging attributes naming the queue at url
// (messaging.system=aws_sqs, messaging.destination.name=<queue name>).
func QueueAttributes(url string) []attribute.KeyValue {
	name := url
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		name = url[i+1:]
	}
	return []attribute.KeyValue{semconv.MessagingSystemAWSSQS, semconv.MessagingDestinationName(name)}
}
