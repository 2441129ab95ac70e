package tracing

import (
	"context"
	"testing"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Settings
		wantErr bool
	}{
		{name: "unset is off", env: nil, want: Settings{}},
		{name: "endpoint alone turns it on over http", env: map[string]string{EnvEndpoint: "http://127.0.0.1:4318"},
			want: Settings{Enabled: true, Protocol: ProtocolHTTPProtobuf}},
		{name: "traces endpoint alone", env: map[string]string{EnvTracesEndpoint: "http://127.0.0.1:4318/v1/traces"},
			want: Settings{Enabled: true, Protocol: ProtocolHTTPProtobuf}},
		{name: "otlp exporter over grpc", env: map[string]string{EnvTracesExporter: "otlp", EnvProtocol: "grpc"},
			want: Settings{Enabled: true, Protocol: ProtocolGRPC}},
		{name: "traces protocol wins", env: map[string]string{EnvTracesExporter: "otlp", EnvProtocol: "grpc", EnvTracesProtocol: "http/protobuf"},
			want: Settings{Enabled: true, Protocol: ProtocolHTTPProtobuf}},
		{name: "none wins over an endpoint", env: map[string]string{EnvTracesExporter: "none", EnvEndpoint: "http://127.0.0.1:4318"},
			want: Settings{}},
		{name: "sdk disabled wins", env: map[string]string{EnvSDKDisabled: "true", EnvTracesExporter: "otlp"},
			want: Settings{}},
		{name: "unknown exporter", env: map[string]string{EnvTracesExporter: "zipkin"}, wantErr: true},
		{name: "unknown protocol", env: map[string]string{EnvTracesExporter: "otlp", EnvProtocol: "http/json"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromEnv(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("FromEnv error = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("FromEnv = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNewOffIsNoop(t *testing.T) {
	t.Parallel()
	p, err := newProvider(t.Context(), "svc", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	_, span := p.Tracer("t").Start(t.Context(), "s")
	defer span.End()
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatalf("tracing off: span recording=%v valid=%v, want neither", span.IsRecording(), span.SpanContext().IsValid())
	}
	attrs := map[string]sqstypes.MessageAttributeValue{}
	InjectMessage(trace.ContextWithSpan(t.Context(), span), attrs)
	if len(attrs) != 0 {
		t.Fatalf("tracing off: message attributes %v, want none", attrs)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("t").Start(t.Context(), "send")
	span.End()

	attrs := map[string]sqstypes.MessageAttributeValue{}
	InjectMessage(ctx, attrs)
	if len(attrs) != 1 {
		t.Fatalf("attributes %v, want only %s", attrs, AttrTraceparent)
	}
	if n := len(AttrTraceparent) + len("String") + len(*attrs[AttrTraceparent].StringValue); n != TraceparentBytes {
		t.Fatalf("traceparent attribute counts %d bytes, TraceparentBytes says %d", n, TraceparentBytes)
	}
	got := trace.SpanContextFromContext(ExtractMessage(context.Background(), attrs))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want the remote context of %v", got, span.SpanContext())
	}
	if got := trace.SpanContextFromContext(ExtractMessage(context.Background(), nil)); got.IsValid() {
		t.Fatalf("no attribute extracted %v, want an invalid context", got)
	}
}

func TestQueueAttributes(t *testing.T) {
	t.Parallel()
	attrs := QueueAttributes("http://127.0.0.1:9324/000000000000/wahook-events")
	if attrs[0].Value.AsString() != "aws_sqs" || attrs[1].Value.AsString() != "wahook-events" {
		t.Fatalf("queue attributes %v", attrs)
	}
}
