package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/logging"
)

// ShutdownWritesTimeout is how long, once the shutdown grace period is over,
// the writes recording results (give back, visibility, dead letters, the
// last deletes) may take together, each tried once: with the default 25s
// grace period, Run returns within ECS's 30s stop timeout.
const ShutdownWritesTimeout = 3 * time.Second

// shutdownPollDrain is how long, once the grace period is over, the pool
// waits for receives still open before it abandons them and gives the cut
// handlers' events back. Polls in flight at shutdown normally ended before
// (ReceiveWait is capped at ShutdownTimeout); this covers network latency and
// a hung connection. It comes out of ShutdownWritesTimeout: Run still returns
// within ShutdownTimeout + ShutdownWritesTimeout.
const shutdownPollDrain = time.Second

// Pool is one process's processors, sharing a ledger breaker.
type Pool struct {
	opts    Options
	deps    Deps
	log     *zap.Logger
	metrics *Metrics
	breaker *breaker
	procs   []*processor
	polls   *polls
	ran     atomic.Bool
}

// New validates opts, applies defaults and returns a Pool ready to Run.
func New(opts Options, deps Deps) (*Pool, error) {
	if deps.Ledger == nil {
		return nil, errors.New("processor: nil ledger")
	}
	if deps.Queue == nil {
		return nil, errors.New("processor: nil queue")
	}
	if deps.Handler == nil {
		return nil, errors.New("processor: nil handler")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		deps.Metrics = m
	}
	if deps.Tracer == nil {
		deps.Tracer = noop.NewTracerProvider().Tracer(tracerName)
	}
	if deps.Probe == nil {
		deps.Probe = deps.Ledger.Probe
	}
	if opts.IDPrefix == "" {
		prefix, err := defaultIDPrefix()
		if err != nil {
			return nil, err
		}
		opts.IDPrefix = prefix
	}
	p := &Pool{opts: opts, deps: deps, log: deps.Log, metrics: deps.Metrics, polls: newPolls()}
	m := deps.Metrics
	p.breaker = newBreaker(opts.BreakerThreshold, deps.Probe, opts.BreakerProbeMin, opts.BreakerProbeMax,
		opts.BackendTimeout, deps.Log, func(s BreakerState) {
			if s == BreakerClosed {
				m.breakerOpen.Set(0)
			} else {
				m.breakerOpen.Set(1)
			}
		})
	for k := 1; k <= opts.Processors; k++ {
		id := opts.IDPrefix + "-p" + strconv.Itoa(k)
		p.procs = append(p.procs, &processor{
			id: id, opts: &p.opts, deps: &p.deps, metrics: m, breaker: p.breaker, polls: p.polls,
			log: deps.Log.With(logging.Processor(id)),
		})
	}
	return p, nil
}

// defaultIDPrefix is "<host>-<pid>-<random>": unique across hosts and restarts.
func defaultIDPrefix() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("processor id: %w", err)
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// IDs returns the processors' ids.
func (p *Pool) IDs() []string {
	ids := make([]string, len(p.procs))
	for i, pr := range p.procs {
		ids[i] = pr.id
	}
	return ids
}

// Breaker reports the ledger breaker's state.
func (p *Pool) Breaker() BreakerState { return p.breaker.State() }

// Status reports every processor's state, for /health/detailed.
func (p *Pool) Status() []Status {
	out := make([]Status, len(p.procs))
	for i, pr := range p.procs {
		out[i] = pr.status()
	}
	return out
}

// Run runs the processors until ctx ends, then shuts down: no new receive
// starts, the long polls in flight run to their end (abandoned, SQS would
// keep them open and hide what they take) and what they return is made
// visible again; in-flight handlers may finish within ShutdownTimeout; those
// still running then are cancelled — once no receive of the pool is open, so
// that none takes them — their claims given back and their messages made
// visible again at once; pending deletes are flushed. Those writes end
// ShutdownWritesTimeout after the grace period at the latest. It returns nil
// after a shutdown. A Pool runs once.
func (p *Pool) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("processor: pool already run")
	}
	// hard outlives ctx by the shutdown grace period: handlers and the writes
	// that record their results run under it.
	hard, cancelHard := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelHard(nil)
	// final bounds the writes that record results: they go on after the
	// grace period, but not for long (each then tried once).
	final, cancelFinal := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFinal()

	// receiving outlives ctx: polls in flight at shutdown are not abandoned.
	receiving, abandonPolls := context.WithCancel(context.WithoutCancel(ctx))
	defer abandonPolls()
	stopPolling := context.AfterFunc(ctx, p.polls.close)
	defer stopPolling()
	for _, pr := range p.procs {
		pr.receiving = receiving
	}

	breakerCtx, stopBreaker := context.WithCancel(hard)
	var breakerDone sync.WaitGroup
	breakerDone.Go(func() { p.breaker.run(breakerCtx) })
	defer func() {
		stopBreaker()
		breakerDone.Wait()
	}()

	var procs sync.WaitGroup
	for _, pr := range p.procs {
		procs.Go(func() { pr.run(ctx, hard, final) })
	}
	done := make(chan struct{})
	go func() {
		procs.Wait()
		close(done)
	}()
	p.log.Info("processors running", zap.Strings("processor_ids", p.IDs()))

	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.log.Info("shutting down: receiving stopped, waiting for in-flight handlers",
		zap.Int64("in_flight", p.inFlight()), zap.Duration("timeout", p.opts.ShutdownTimeout))
	grace := time.NewTimer(p.opts.ShutdownTimeout)
	defer grace.Stop()
	writes := time.AfterFunc(p.opts.ShutdownTimeout+ShutdownWritesTimeout, cancelFinal)
	defer writes.Stop()
	select {
	case <-done:
	case <-grace.C:
		// A receive still open would take the events given back now.
		select {
		case <-p.polls.Idle():
		case <-time.After(shutdownPollDrain):
			p.log.Warn("shutdown: receives still open after the grace period; abandoning them")
			abandonPolls()
			<-p.polls.Idle()
		}
		p.log.Warn("shutdown timeout: cancelling in-flight handlers and giving their events back",
			zap.Int64("in_flight", p.inFlight()))
		cancelHard(ErrShutdown)
		<-done
	}
	p.log.Info("processors stopped")
	return nil
}

func (p *Pool) inFlight() int64 {
	var n int64
	for _, pr := range p.procs {
		n += pr.inFlight.Load()
	}
	return n
}
