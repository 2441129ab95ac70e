// Package tracing sets up OpenTelemetry traces for both services from the
// standard OTEL_* variables only, and carries a trace across the queue as a
// W3C traceparent message attribute.
//
// Tracing is off unless the environment asks for it: OTEL_TRACES_EXPORTER=otlp,
// or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with OTEL_TRACES_EXPORTER unset. Off, the
// services use a no-op tracer provider: no exporter, no batching goroutine,
// spans that record nothing, and no traceparent on the queue's messages.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The standard variables this package reads itself; the OTLP exporters and
// the SDK read the rest (endpoint, headers, timeout, TLS, OTEL_TRACES_SAMPLER,
// OTEL_BSP_*, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
const (
	EnvSDKDisabled       = "OTEL_SDK_DISABLED"
	EnvTracesExporter    = "OTEL_TRACES_EXPORTER"
	EnvEndpoint          = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint    = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol          = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol    = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolGRPC         = "grpc"
	exporterOTLP         = "otlp"
	exporterNone         = "none"
)

// Settings is what the environment asks for.
type Settings struct {
	// Enabled is false when traces are off (the default).
	Enabled bool
	// Protocol is ProtocolHTTPProtobuf or ProtocolGRPC when Enabled.
	Protocol string
}

// FromEnv reads the settings through getenv (os.Getenv in production).
// An exporter or protocol it does not support is an error naming the variable.
func FromEnv(getenv func(string) string) (Settings, error) {
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return Settings{}, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv(EnvTracesExporter)))
	switch exporter {
	case exporterNone:
		return Settings{}, nil
	case "":
		if getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "" {
			return Settings{}, nil
		}
	case exporterOTLP:
	default:
		return Settings{}, fmt.Errorf("%s: %q is not supported (otlp or none)", EnvTracesExporter, exporter)
	}
	protocol := strings.ToLower(strings.TrimSpace(getenv(EnvTracesProtocol)))
	if protocol == "" {
		protocol = strings.ToLower(strings.TrimSpace(getenv(EnvProtocol)))
	}
	switch protocol {
	case "", ProtocolHTTPProtobuf:
		protocol = ProtocolHTTPProtobuf
	case ProtocolGRPC:
	default:
		return Settings{}, fmt.Errorf("%s: %q is not supported (http/protobuf or grpc)", EnvProtocol, protocol)
	}
	return Settings{Enabled: true, Protocol: protocol}, nil
}

// Provider is a service's tracer provider and what stops it.
type Provider struct {
	trace.TracerProvider
	// Settings are what the environment asked for.
	Settings Settings
	sdk      *sdktrace.TracerProvider
}

// Shutdown flushes the spans not yet exported and stops the exporter; a
// no-op when traces are off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// New returns the tracer provider the environment asks for. service is the
// default service.name (OTEL_SERVICE_NAME wins).
func New(ctx context.Context, service string) (*Provider, error) {
	return newProvider(ctx, service, os.Getenv)
}

func newProvider(ctx context.Context, service string, getenv func(string) string) (*Provider, error) {
	s, err := FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if !s.Enabled {
		return &Provider{TracerProvider: noop.NewTracerProvider(), Settings: s}, nil
	}
	var exp sdktrace.SpanExporter
	switch s.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter (%s): %w", s.Protocol, err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: sdk, Settings: s, sdk: sdk}, nil
}

// Propagator is the W3C trace context propagator both services use.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}
