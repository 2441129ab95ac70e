// Command worker long-polls the event queue and handles every event exactly
// once to completion: claim in the ledger under a lease, run the configured
// handlers while heartbeating, complete, delete. See DESIGN.md, "Worker".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awsclient"
	shared "github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/profiling"
	"github.com/wahook/wahook/shared/queuestats"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/tracing"
	"github.com/wahook/wahook/worker/handlers/audit"
	"github.com/wahook/wahook/worker/handlers/forward"
	"github.com/wahook/wahook/worker/handlers/store"
	"github.com/wahook/wahook/worker/internal/config"
	"github.com/wahook/wahook/worker/internal/server"
	"github.com/wahook/wahook/worker/processor"
)

func main() {
	// The logger's own settings; run loads and validates the full config.
	level, format := "info", "json"
	if c, err := shared.Load[shared.Common](); err == nil {
		level, format = c.LogLevel, c.LogFormat
	}
	log, err := logging.New(level, format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, log)
	stop()
	if err != nil {
		log.Error("worker stopped with an error", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

// run works until ctx ends (SIGINT/SIGTERM), then shuts down gracefully.
func run(ctx context.Context, log *zap.Logger) error {
	cfg, err := shared.Load[config.Config]()
	if err != nil {
		return err
	}
	log.Info("starting worker", shared.Fields(cfg)...)
	if cfg.ForwardURL != "" && !slices.Contains(cfg.HandlerNames(), config.HandlerForward) {
		log.Warn("WAHOOK_FORWARD_URL is set but WAHOOK_HANDLERS does not list forward: nothing is forwarded")
	}

	startCtx, cancelStart := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelStart()
	clients, err := awsclient.New(startCtx, awsclient.Options{DynamoDBInFlight: cfg.DynamoDBConcurrency})
	if err != nil {
		return err
	}
	if cfg.AutoProvision {
		spec := resources.SpecFrom(cfg.Common)
		spec.AuditTable = cfg.AuditTable
		if _, err := resources.Ensure(startCtx, clients.DynamoDB, clients.SQS, spec, log); err != nil {
			return fmt.Errorf("auto-provision: %w", err)
		}
		if cfg.AuditSequenceTable != "" {
			if err := resources.EnsureTable(startCtx, clients.DynamoDB, resources.AuditTableInput(cfg.AuditSequenceTable), log); err != nil {
				return fmt.Errorf("auto-provision: %w", err)
			}
		}
	}
	queueURL, err := resources.QueueURL(startCtx, clients.SQS, cfg.Common)
	if err != nil {
		return err
	}
	dlqURL, err := resources.DeadLetterURL(startCtx, clients.SQS, queueURL)
	if err != nil {
		return fmt.Errorf("dead-letter queue: %w", err)
	}
	limits, err := resources.ReadQueueLimits(startCtx, clients.SQS, queueURL, dlqURL)
	if err != nil {
		return err
	}
	if len(limits.Assumed) > 0 {
		log.Warn("the SQS endpoint does not report some queue attributes; assuming SQS's most cautious values",
			zap.Strings("assumed", limits.Assumed), zap.Duration("retention", resources.AssumedRetention),
			zap.Int("max_message_bytes", resources.AssumedMaxMessageBytes))
	}
	if err := limits.CheckTTL(cfg.ItemTTL); err != nil {
		return err
	}
	visibility, lease, maxReceive := cfg.VisibilityTimeout, cfg.LeaseDuration, cfg.MaxReceiveCount
	if v, n, err := queueAttributes(startCtx, clients.SQS, queueURL); err != nil {
		log.Warn("reading the queue's attributes failed; using WAHOOK_VISIBILITY_TIMEOUT and WAHOOK_MAX_RECEIVE_COUNT",
			zap.Error(err))
	} else {
		if v >= time.Second && v != visibility {
			// Heartbeats must follow the queue's own setting.
			log.Warn("the queue's visibility timeout differs from WAHOOK_VISIBILITY_TIMEOUT; using the queue's",
				zap.Duration("queue", v), zap.Duration("config", visibility))
			visibility = v
		}
		if n > 0 && n != maxReceive {
			// The last-receive check must follow the queue's redrive policy.
			log.Warn("the queue's redrive maxReceiveCount differs from WAHOOK_MAX_RECEIVE_COUNT; using the queue's",
				zap.Int("queue", n), zap.Int("config", maxReceive))
			maxReceive = n
		}
	}
	if lease == 0 {
		lease = visibility
	} else if lease < visibility {
		// The queue's visibility may exceed the validated config's: a lease
		// shorter than it lapses between heartbeats.
		log.Warn("WAHOOK_LEASE_DURATION is under the queue's visibility timeout; using the visibility timeout",
			zap.Duration("lease", lease), zap.Duration("visibility", visibility))
		lease = visibility
	}
	cancelStart()

	ledgerStore, err := ledger.New(clients.DynamoDB, cfg.LedgerTable, ledger.Options{TTL: cfg.ItemTTL})
	if err != nil {
		return err
	}
	handler, closeHandlers, err := buildHandler(cfg, clients)
	if err != nil {
		return err
	}
	traces, err := tracing.New(ctx, "wahook-worker")
	if err != nil {
		return err
	}
	defer shutdownTraces(log, traces)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := processor.NewMetrics(reg)
	if err != nil {
		return err
	}
	pool, err := processor.New(processor.Options{
		QueueURL:          queueURL,
		DeadLetterURL:     dlqURL,
		Processors:        cfg.Processors,
		VisibilityTimeout: visibility,
		LeaseDuration:     lease,
		DisableHeartbeat:  !cfg.Heartbeat,
		HandlerTimeout:    cfg.HandlerTimeout,
		MaxAttempts:       cfg.MaxAttempts,
		MaxInterruptions:  cfg.MaxInterruptions,
		MaxReceiveCount:   maxReceive,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		ReceiveWait:       cfg.ReceiveWait,
		RetryBase:         cfg.RetryBase,
		RetryMax:          cfg.RetryMax,
		BackendTimeout:    cfg.BackendTimeout,
		BreakerThreshold:  cfg.BreakerThreshold,
		MaxMessageBytes:   limits.DLQMaxMessageBytes,
	}, processor.Deps{Ledger: ledgerStore, Queue: clients.SQS, Handler: handler, Metrics: metrics, Log: log,
		Tracer: traces.Tracer("github.com/wahook/wahook/worker")})
	if err != nil {
		return err
	}

	if cfg.QueueStatsInterval > 0 {
		stats, err := queuestats.New(clients.SQS, queueURL, dlqURL, cfg.QueueStatsInterval, cfg.BackendTimeout, reg, log)
		if err != nil {
			return err
		}
		defer stats.Start(ctx)()
	}

	checker := health.NewChecker(2*time.Second, map[string]health.Check{
		"dynamodb": health.DynamoDB(clients.DynamoDB, cfg.LedgerTable),
		"sqs":      health.SQS(clients.SQS, queueURL),
	})
	srv := &http.Server{
		Handler:           profiling.Mount(server.New(checker, pool, reg, log), cfg.Pprof),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.HealthAddr)
	if err != nil {
		return fmt.Errorf("health server: %w", err)
	}
	log.Info("health server listening", zap.String("addr", ln.Addr().String()))
	serverErrs := make(chan error, 1)
	go func() { serverErrs <- srv.Serve(ln) }()

	poolCtx, stopPool := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPool()
	poolDone := make(chan error, 1)
	go func() { poolDone <- pool.Run(poolCtx) }()

	var runErr error
	select {
	case err := <-serverErrs:
		runErr = fmt.Errorf("health server: %w", err)
		serverErrs = nil
	case err := <-poolDone:
		runErr = fmt.Errorf("processors stopped unexpectedly: %v", err)
		poolDone = nil
	case <-ctx.Done():
		log.Info("shutdown signal received")
	}

	stopPool()
	if poolDone != nil {
		if err := <-poolDone; err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	if err := closeHandlers(); err != nil {
		log.Warn("a handler's writes after its runs ended failed", zap.Error(err))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("health server shutdown: %w", err))
	}
	if serverErrs != nil {
		if err := <-serverErrs; err != nil && !errors.Is(err, http.ErrServerClosed) {
			runErr = errors.Join(runErr, fmt.Errorf("health server: %w", err))
		}
	}
	log.Info("worker stopped")
	return runErr
}

// queueAttributes reads the queue's default visibility timeout and its
// redrive policy's maxReceiveCount (0 without a redrive policy).
func queueAttributes(ctx context.Context, q *sqs.Client, url string) (time.Duration, int, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout,
			sqstypes.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("queue attributes of %s: %w", url, err)
	}
	secs, err := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)])
	if err != nil {
		return 0, 0, fmt.Errorf("visibility timeout of %s: %w", url, err)
	}
	maxReceive, err := redriveMaxReceiveCount(out.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)])
	if err != nil {
		return 0, 0, fmt.Errorf("redrive policy of %s: %w", url, err)
	}
	return time.Duration(secs) * time.Second, maxReceive, nil
}

// redriveMaxReceiveCount parses a RedrivePolicy attribute's maxReceiveCount,
// which SQS gives as a number or a string; "" (no policy) is 0.
func redriveMaxReceiveCount(policy string) (int, error) {
	if policy == "" {
		return 0, nil
	}
	var p struct {
		MaxReceiveCount json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.Trim(string(p.MaxReceiveCount), `"`))
	if err != nil {
		return 0, fmt.Errorf("maxReceiveCount %s: %w", p.MaxReceiveCount, err)
	}
	return n, nil
}

// buildHandler chains the configured handlers in order. The func it returns
// waits for what the handlers still write after their runs have returned (the
// audit handler's cancelled records); run calls it once the processors have
// stopped.
func buildHandler(cfg config.Config, clients *awsclient.Clients) (processor.Handler, func() error, error) {
	var (
		hs      []processor.Handler
		closers []func() error
	)
	for _, name := range cfg.HandlerNames() {
		var (
			h   processor.Handler
			err error
		)
		switch name {
		case config.HandlerStore:
			h, err = store.New(clients.DynamoDB, cfg.MessagesTable)
		case config.HandlerForward:
			h, err = forward.New(forward.Options{URL: cfg.ForwardURL, Secret: cfg.ForwardSecret, Timeout: cfg.ForwardTimeout})
		case config.HandlerAudit:
			var a *audit.Handler
			a, err = audit.New(clients.DynamoDB, audit.Options{Table: cfg.AuditTable, Delay: cfg.AuditDelay,
				SequenceTable: cfg.AuditSequenceTable, FailRate: cfg.AuditFailRate, FailSeed: cfg.AuditFailSeed,
				Stuck: cfg.AuditStuck})
			if err == nil {
				h = a
				closers = append(closers, a.Close)
			}
		default:
			err = fmt.Errorf("unknown handler %q", name)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("handler %s: %w", name, err)
		}
		hs = append(hs, processor.Traced(name, h))
	}
	closeAll := func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	if len(hs) == 1 {
		return hs[0], closeAll, nil
	}
	return processor.Chain(hs...), closeAll, nil
}

// shutdownTraces flushes the spans not yet exported, within a bound.
func shutdownTraces(log *zap.Logger, p *tracing.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("flushing traces failed", zap.Error(err))
	}
}
