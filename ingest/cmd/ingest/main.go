// Command ingest receives WhatsApp Cloud API webhooks: it verifies them, records
// every event in the ledger and enqueues it exactly once. See DESIGN.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/deadline"
	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/profiling"
	"github.com/wahook/wahook/shared/queuestats"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/tracing"
)

// HTTP server limits. Reading a 3 MB body from Meta takes far less than
// readTimeout; writeTimeout is a backstop over the handler's own deadlines;
// idleTimeout outlives a load balancer's 60s idle timeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 90 * time.Second
	idleTimeout       = 75 * time.Second
	provisionTimeout  = 2 * time.Minute
)

// defaultGOGC is ingest's garbage-collection target when GOGC is not set: the
// heap may grow to 1.5 × the live heap between collections instead of 2 ×. A
// 1,000-update body keeps up to 64 Acquires, 64 MarkQueued calls and its
// sends in flight, each call allocating about 27 KB in the AWS SDK; with Go's
// default of 100 an ingest that took such bodies peaked at 55–61 MB resident,
// with 50 at 48–57 MB, answering as fast — before the MarkQueued calls were
// bounded; since, with 50, at 46–47 MB (README, Measured). Set GOGC to
// override it.
const defaultGOGC = 50

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
	// The level and format are validated with the rest of the config in run;
	// an invalid one falls back to the defaults here so that error can be logged.
	log, err := logging.New(cmp.Or(os.Getenv("WAHOOK_LOG_LEVEL"), "info"), cmp.Or(os.Getenv("WAHOOK_LOG_FORMAT"), "json"))
	if err != nil {
		log, _ = logging.New("info", "json")
	}
	if err := run(context.Background(), log); err != nil {
		log.Error("ingest stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

// run loads the configuration and serves until SIGTERM or SIGINT.
func run(ctx context.Context, log *zap.Logger) error {
	cfg, err := config.Load[Config]()
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)
	return serve(ctx, log, cfg, awsclient.Options{}, stop, nil)
}

// serve builds the dependencies in order, serves HTTP until a signal arrives on
// stop (or ctx ends, or the server fails), then shuts down gracefully within
// cfg.ShutdownTimeout. ready, when set, learns the address listened on.
func serve(ctx context.Context, log *zap.Logger, cfg Config, awsOpts awsclient.Options, stop <-chan os.Signal, ready func(net.Addr)) error {
	log.Info("starting ingest", config.Fields(cfg)...)
	creds, err := cfg.Credentials()
	if err != nil {
		return err
	}
	log.Info("credentials", zap.Int("app_secrets", len(creds.AppSecrets)), zap.Int("verify_tokens", len(creds.VerifyTokens)))
	if cfg.InsecureSkipSignature {
		log.Warn("WAHOOK_INSECURE_SKIP_SIGNATURE=true: webhook signatures are NOT verified; development only")
	}
	if len(creds.VerifyTokens) == 0 {
		log.Warn("no verify token (WAHOOK_VERIFY_TOKEN, WAHOOK_VERIFY_TOKENS or WAHOOK_VERIFY_TOKENS_FILE): Meta's subscription handshake will be refused")
	}

	awsOpts.DynamoDBInFlight = cfg.DynamoDBConcurrency
	clients, err := awsclient.New(ctx, awsOpts)
	if err != nil {
		return err
	}
	queueURL, err := queue(ctx, log, cfg, clients)
	if err != nil {
		return err
	}
	dlqURL, limits, err := lifetime(ctx, log, cfg, clients, queueURL)
	if err != nil {
		return err
	}
	store, err := ledger.New(deadline.DynamoDB(clients.DynamoDB, cfg.BackendTimeout), cfg.LedgerTable, ledger.Options{
		TTL: cfg.ItemTTL, ResendWindow: cfg.ResendWindow, InFlightWait: cfg.InFlightWait,
	})
	if err != nil {
		return err
	}
	traces, err := tracing.New(ctx, "wahook-ingest")
	if err != nil {
		return err
	}
	defer shutdownTraces(log, traces)
	tracer := traces.Tracer("github.com/wahook/wahook/ingest")
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	if cfg.QueueStatsInterval > 0 {
		// Here too: the backlog must show while every worker is down.
		stats, err := queuestats.New(clients.SQS, queueURL, dlqURL, cfg.QueueStatsInterval, cfg.BackendTimeout, reg, log)
		if err != nil {
			return err
		}
		defer stats.Start(ctx)()
	}
	for _, op := range []string{pipeline.OpAdmit, pipeline.OpMarkQueued, pipeline.OpRelease} {
		m.KnownBackendOperation(metrics.BackendDynamoDB, op)
	}
	for _, op := range []string{pipeline.OpSendMessageBatch, pipeline.OpSendMessage} {
		m.KnownBackendOperation(metrics.BackendSQS, op)
	}
	pipe, err := pipeline.New(store, clients.SQS, m, pipeline.Options{
		QueueURL: queueURL, SendTimeout: cfg.SendTimeout, BackendTimeout: cfg.BackendTimeout,
		Concurrency: cfg.AdmitConcurrency, LatencyTarget: cfg.AdmitLatencyTarget, SendConcurrency: cfg.SendConcurrency, RenewEvery: cfg.ResendWindow / 3,
		MaxMessageBytes: limits.QueueMaxMessageBytes,
		DeadLetterURL:   dlqURL, DeadLetters: clients.SQS, DeadLetterMaxBytes: limits.DLQMaxMessageBytes, Tracer: tracer,
	})
	if err != nil {
		return err
	}
	checker := health.NewChecker(min(cfg.BackendTimeout, 2*time.Second), map[string]health.Check{
		"dynamodb": health.DynamoDB(clients.DynamoDB, cfg.LedgerTable),
		"sqs":      health.SQS(clients.SQS, queueURL),
	})
	handler, err := server.New(server.Options{
		AppSecrets: creds.AppSecrets, InsecureSkipSignature: cfg.InsecureSkipSignature,
		VerifyTokens: creds.VerifyTokens, BodyLimit: cfg.BodyLimit,
	}, server.Deps{Processor: pipe, Checker: checker, Metrics: m, Gatherer: reg, Log: log, Tracer: tracer})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           profiling.Mount(handler, cfg.Pprof),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	serverErr := make(chan error, 1)
	go func() { serverErr <- srv.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("queue_url", queueURL))
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-serverErr:
		return fmt.Errorf("http server: %w", err)
	case sig := <-stop:
		log.Info("shutting down", zap.Stringer("signal", sig), zap.Duration("timeout", cfg.ShutdownTimeout))
	case <-ctx.Done():
		log.Info("shutting down", zap.Error(ctx.Err()), zap.Duration("timeout", cfg.ShutdownTimeout))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-serverErr
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-serverErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("stopped")
	return nil
}

// queue provisions the tables and queues when asked to, and returns the queue URL.
func queue(ctx context.Context, log *zap.Logger, cfg Config, clients *awsclient.Clients) (string, error) {
	if cfg.AutoProvision {
		pctx, cancel := context.WithTimeout(ctx, provisionTimeout)
		defer cancel()
		prov, err := resources.Ensure(pctx, clients.DynamoDB, clients.SQS, resources.SpecFrom(cfg.Common), log)
		if err != nil {
			return "", fmt.Errorf("auto-provision: %w", err)
		}
		if cfg.QueueURL != "" && !strings.EqualFold(cfg.QueueURL, prov.QueueURL) {
			log.Warn("WAHOOK_QUEUE_URL differs from the provisioned queue; using WAHOOK_QUEUE_URL",
				zap.String("provisioned", prov.QueueURL))
			return cfg.QueueURL, nil
		}
		return prov.QueueURL, nil
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.BackendTimeout)
	defer cancel()
	return resources.QueueURL(rctx, clients.SQS, cfg.Common)
}

// lifetime finds the DLQ and reads both queues' retention and message size:
// WAHOOK_ITEM_TTL must outlive every message that can name a key, and events
// larger than the queue's MaximumMessageSize are rejected (with their raw copy
// in the DLQ).
func lifetime(ctx context.Context, log *zap.Logger, cfg Config, clients *awsclient.Clients, queueURL string) (string, resources.QueueLimits, error) {
	rctx, cancel := context.WithTimeout(ctx, 3*cfg.BackendTimeout)
	defer cancel()
	dlqURL, err := resources.DeadLetterURL(rctx, clients.SQS, queueURL)
	if err != nil {
		return "", resources.QueueLimits{}, fmt.Errorf("dead-letter queue: %w", err)
	}
	limits, err := resources.ReadQueueLimits(rctx, clients.SQS, queueURL, dlqURL)
	if err != nil {
		return "", resources.QueueLimits{}, err
	}
	if len(limits.Assumed) > 0 {
		log.Warn("the SQS endpoint does not report some queue attributes; assuming SQS's most cautious values",
			zap.Strings("assumed", limits.Assumed), zap.Duration("retention", resources.AssumedRetention),
			zap.Int("max_message_bytes", resources.AssumedMaxMessageBytes))
	}
	if err := limits.CheckTTL(cfg.ItemTTL); err != nil {
		return "", resources.QueueLimits{}, err
	}
	return dlqURL, limits, nil
}

// shutdownTraces flushes the spans not yet exported, within a bound.
func shutdownTraces(log *zap.Logger, p *tracing.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("flushing traces failed", zap.Error(err))
	}
}
