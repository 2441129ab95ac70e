package server

import (
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// traceWebhook starts a server span for each request to the webhook route
// (health checks and metric scrapes are not traced: they would drown the
// traces that matter). The span is a new root: a traceparent sent by the
// internet is not trusted to join a trace of ours.
func traceWebhook(tracer trace.Tracer) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Path() != PathWebhook {
				return next(c)
			}
			req := c.Request()
			ctx, span := tracer.Start(req.Context(), req.Method+" "+PathWebhook,
				trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.HTTPRoute(PathWebhook),
					semconv.URLPath(req.URL.Path)))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			status := c.Response().Status
			if err != nil {
				// The access log turns the error into the response after us.
				// Not the error's text: a parse error may quote the body.
				status = statusOf(err)
			}
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if status >= 500 {
				span.SetStatus(codes.Error, "server error")
			}
			return err
		}
	}
}
