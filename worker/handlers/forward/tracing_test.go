package forward_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTraceparentSent: the handler's span continues in the team's service
// through a W3C traceparent header; untraced, no header is sent.
func TestTraceparentSent(t *testing.T) {
	t.Parallel()
	h, s := newHandler(t, status(http.StatusOK))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("t").Start(t.Context(), "handler forward")
	defer span.End()
	if err := h.Handle(ctx, event(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(t.Context(), event(t, 2)); err != nil {
		t.Fatal(err)
	}
	reqs := s.seen()
	sc := span.SpanContext()
	want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	if got := reqs[0].header.Get("traceparent"); got != want {
		t.Fatalf("traced request traceparent %q, want %q", got, want)
	}
	if got := reqs[1].header.Get("traceparent"); got != "" {
		t.Fatalf("untraced request traceparent %q, want none", got)
	}
}
