// Package server is ingest's HTTP layer: Meta's webhook endpoints, health and
// metrics, on echo, with request ids, panic recovery and an access log.
package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/signature"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/webhook"
)

// Routes.
const (
	PathWebhook        = "/webhook"
	PathHealth         = "/health"
	PathHealthDetailed = "/health/detailed"
	PathMetrics        = "/metrics"
)

// DefaultBodyLimit is the largest webhook body accepted when Options.BodyLimit is
// zero (Meta sends at most 3 MB).
const DefaultBodyLimit = 4 << 20

// Processor takes a parsed webhook to the queue.
type Processor interface {
	Process(ctx context.Context, b *webhook.Batch, log *zap.Logger) pipeline.Result
}

// Checker probes the backends for /health/detailed.
type Checker interface {
	Run(ctx context.Context) health.Report
}

// Options configures the HTTP layer.
type Options struct {
	// AppSecrets key the X-Hub-Signature-256 HMAC: a body signed with any of
	// them is accepted, and the match is counted by its index. One of
	// AppSecrets and AppSecret is required unless InsecureSkipSignature is set.
	AppSecrets []string
	// AppSecret is the one-secret form of AppSecrets.
	AppSecret string
	// InsecureSkipSignature accepts unsigned webhooks (local development only).
	InsecureSkipSignature bool
	// VerifyTokens are what Meta's subscription handshake may present; none
	// refuses every handshake.
	VerifyTokens []string
	// VerifyToken is the one-token form of VerifyTokens.
	VerifyToken string
	// BodyLimit is the largest body accepted, in bytes (default DefaultBodyLimit).
	BodyLimit int64
}

// Deps are the collaborators of the HTTP layer.
type Deps struct {
	Processor Processor
	Checker   Checker
	Metrics   *metrics.Metrics
	Gatherer  prometheus.Gatherer
	Log       *zap.Logger
	// Tracer starts the webhook request's span (default: a no-op tracer).
	Tracer trace.Tracer
}

type server struct {
	opts     Options
	verifier *signature.Verifier // nil when signatures are not checked
	tokens   tokenSet
	proc     Processor
	checker  Checker
	metrics  *metrics.Metrics
	log      *zap.Logger
}

// New returns the HTTP handler with every route and middleware.
func New(opts Options, deps Deps) (*echo.Echo, error) {
	switch {
	case deps.Processor == nil:
		return nil, errors.New("server: nil processor")
	case deps.Checker == nil:
		return nil, errors.New("server: nil checker")
	case deps.Metrics == nil:
		return nil, errors.New("server: nil metrics")
	case deps.Gatherer == nil:
		return nil, errors.New("server: nil gatherer")
	case deps.Log == nil:
		return nil, errors.New("server: nil logger")
	case len(opts.AppSecrets) > 0 && opts.AppSecret != "":
		return nil, errors.New("server: both AppSecrets and AppSecret set")
	case len(opts.VerifyTokens) > 0 && opts.VerifyToken != "":
		return nil, errors.New("server: both VerifyTokens and VerifyToken set")
	}
	if opts.AppSecret != "" {
		opts.AppSecrets = []string{opts.AppSecret}
	}
	if opts.VerifyToken != "" {
		opts.VerifyTokens = []string{opts.VerifyToken}
	}
	if len(opts.AppSecrets) == 0 && !opts.InsecureSkipSignature {
		return nil, errors.New("server: no app secret, and unsigned webhooks not explicitly allowed")
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = DefaultBodyLimit
	}
	s := &server{
		opts: opts, proc: deps.Processor, checker: deps.Checker, metrics: deps.Metrics, log: deps.Log,
	}
	if !opts.InsecureSkipSignature {
		secrets := make([][]byte, len(opts.AppSecrets))
		for i, v := range opts.AppSecrets {
			secrets[i] = []byte(v)
		}
		v, err := signature.NewVerifier(secrets...)
		if err != nil {
			return nil, fmt.Errorf("server: app secrets: %w", err)
		}
		s.verifier = v
	}
	tokens, err := newTokenSet(opts.VerifyTokens)
	if err != nil {
		return nil, fmt.Errorf("server: verify tokens: %w", err)
	}
	s.tokens = tokens
	deps.Metrics.Credentials(len(opts.AppSecrets), len(opts.VerifyTokens))

	if deps.Tracer == nil {
		deps.Tracer = noop.NewTracerProvider().Tracer("")
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(
		dropUnusableRequestID,
		middleware.RequestIDWithConfig(middleware.RequestIDConfig{
			RequestIDHandler: func(c echo.Context, id string) {
				c.Set(loggerKey, s.log.With(logging.RequestID(id)))
			},
		}),
		s.accessLog(),
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				logger(c).Error("panic in handler", zap.Error(err), zap.ByteString("stack", stack))
				return errors.Join(errPanic, err)
			},
			DisableErrorHandler: true, // the access log hands the error to handleError
		}),
		traceWebhook(deps.Tracer),
	)
	e.GET(PathWebhook, s.verify)
	e.POST(PathWebhook, s.receive)
	e.GET(PathHealth, s.live)
	e.GET(PathHealthDetailed, s.detailed)
	e.GET(PathMetrics, echo.WrapHandler(promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})))
	return e, nil
}

const loggerKey = "wahook.logger"

// maxRequestIDLen bounds an incoming X-Request-ID: it is repeated on every log
// line of the request.
const maxRequestIDLen = 128

// dropUnusableRequestID removes an incoming X-Request-ID that is too long or
// not printable ASCII, so that the RequestID middleware makes up a new one.
func dropUnusableRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !usableRequestID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func usableRequestID(id string) bool {
	if len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// logger is the request's logger: every line carries the request id.
func logger(c echo.Context) *zap.Logger {
	if l, ok := c.Get(loggerKey).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}

// accessLog logs one line per request (path only: GET /webhook carries the
// verify token in its query) and records /webhook's metrics. It hands errors to
// handleError first, so the status it logs is the one the client got.
func (s *server) accessLog() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError: true,
		BeforeNextFunc: func(c echo.Context) {
			if c.Path() == PathWebhook {
				s.metrics.RequestStarted()
			}
		},
		LogLatency:       true,
		LogMethod:        true,
		LogURIPath:       true,
		LogRoutePath:     true,
		LogStatus:        true,
		LogError:         true,
		LogRemoteIP:      true,
		LogUserAgent:     true,
		LogContentLength: true,
		LogResponseSize:  true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			if v.RoutePath == PathWebhook {
				s.metrics.RequestDone(v.Method, v.Status, v.Latency)
			}
			fields := []zap.Field{
				zap.String("method", v.Method), zap.String("path", v.URIPath), zap.Int("status", v.Status),
				zap.Duration("latency", v.Latency), zap.String("remote_ip", v.RemoteIP),
				zap.String("user_agent", v.UserAgent), zap.String("content_length", v.ContentLength),
				zap.Int64("response_size", v.ResponseSize),
			}
			if v.Error != nil {
				fields = append(fields, zap.Error(v.Error))
			}
			log := logger(c)
			switch {
			case v.Status >= 500:
				log.Warn("request", fields...)
			case v.RoutePath == PathHealth || v.RoutePath == PathHealthDetailed || v.RoutePath == PathMetrics:
				log.Debug("request", fields...) // probes and scrapes
			default:
				log.Info("request", fields...)
			}
			return nil
		},
	})
}
