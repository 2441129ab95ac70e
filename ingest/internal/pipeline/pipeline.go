// Package pipeline takes a parsed webhook to the queue: admit every event in the
// ledger, send the admitted ones to SQS in batches, then mark them queued — or
// release them when their send failed, so that Meta's retry delivers them again.
// The stages overlap: a batch is sent as soon as ten events are admitted, and
// its events are marked while later ones are still being admitted. While the
// request owns events it has not sent yet, it renews them, so that no sibling
// request takes over the events of a live one.
//
// The pipeline never reports an event as handled unless it is in the queue or
// the ledger already knew it (queued or later): a caller answers Meta 200 only
// for a Result with no Failed events.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/tracing"
	"github.com/wahook/wahook/shared/webhook"
)

// Ledger is the part of *ledger.Store the pipeline uses.
type Ledger interface {
	Acquire(ctx context.Context, key string) (ledger.Receipt, error)
	Await(ctx context.Context, tried []ledger.Receipt, owned func(i int, r ledger.Receipt)) ([]ledger.Admission, []error)
	Renew(ctx context.Context, r ledger.Receipt) (bool, error)
	MarkQueued(ctx context.Context, r ledger.Receipt) (bool, error)
	Release(ctx context.Context, r ledger.Receipt) (bool, error)
	// For rejected events (reject.go).
	MarkRejected(ctx context.Context, r ledger.Receipt, reason string) (bool, error)
	Reject(ctx context.Context, key, reason string) (bool, error)
	Get(ctx context.Context, key string) (ledger.Item, error)
	// For contended bodies (contention.go).
	Read(ctx context.Context, keys []string) (map[string]ledger.Item, error)
}

// Queue is the part of *sqs.Client the pipeline uses.
type Queue interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// SQS limits of one SendMessageBatch call. MaxBatchBytes is the default of
// Options.MaxMessageBytes (SQS's former limit, which every queue accepts);
// ingest reads the queue's own MaximumMessageSize at start.
const (
	MaxBatchEntries = 10
	MaxBatchBytes   = 256 * 1024
)

// Operation names, the `operation` label of backend errors.
const (
	OpAdmit            = "admit"
	OpRenew            = "renew"
	OpMarkQueued       = "mark_queued"
	OpRelease          = "release"
	OpSendMessageBatch = "send_message_batch"
	OpSendMessage      = "send_message" // one entry the queue refused in a batch
)

// Options tunes a Pipeline. Zero values mean the documented defaults.
type Options struct {
	// QueueURL is the queue events are sent to; a URL ending in .fifo gets
	// MessageGroupId and MessageDeduplicationId.
	QueueURL string
	// SendTimeout bounds one SendMessageBatch call (default 5s). It must be
	// shorter than the ledger's resend window.
	SendTimeout time.Duration
	// BackendTimeout bounds one MarkQueued or Release (default 5s), and how
	// long an event waits for an admission slot before its webhook is left to
	// Meta's retry.
	BackendTimeout time.Duration
	// Concurrency is the most Acquire calls the process's webhooks run at once,
	// together (default 64). Admission starts at 16 and adapts within
	// 4..Concurrency to how fast the ledger answers (limit.go); one large body
	// may use all of it, concurrent webhooks share it in turn. The MarkQueued
	// and Release calls that settle sent batches are bounded by it too, apart:
	// each in flight holds a connection, a goroutine and its stack, and
	// unbounded there were 95 for one 1,000-update body. The
	// process may bound all its DynamoDB calls besides
	// (WAHOOK_DYNAMODB_CONCURRENCY, in the client).
	Concurrency int
	// LatencyTarget is the mean time for the ledger to answer a round of
	// Acquire calls above which admission halves its concurrency (default
	// 250ms).
	LatencyTarget time.Duration
	// SendConcurrency is how many SendMessageBatch calls one webhook has in
	// flight (default 4). Each sent batch's events are then marked queued at
	// once, as far as the process's settle slots (Concurrency) allow. A FIFO
	// queue sends one batch at a time, in body order.
	SendConcurrency int
	// RenewEvery is how often the events a request owns and has not sent yet are
	// renewed in the ledger (default 10s/3): a third of the ledger's resend
	// window, so that a live request is never taken over.
	RenewEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// MaxMessageBytes is the queue's MaximumMessageSize: a larger event is
	// rejected; SQS also bounds a batch's total by it (default MaxBatchBytes).
	MaxMessageBytes int
	// DeadLetterURL and DeadLetters take the raw copies of rejected events
	// (reject.go). Without them a rejected event is only counted and logged.
	DeadLetterURL string
	DeadLetters   DeadLetterQueue
	// DeadLetterMaxBytes is the DLQ's MaximumMessageSize (default
	// MaxMessageBytes): a larger raw event is cut to fit.
	DeadLetterMaxBytes int
	// Tracer starts the admission and send spans (default: a no-op tracer).
	Tracer trace.Tracer
}

// Result counts what became of a webhook's events. Received = Queued +
// Duplicates + Rejected + Failed.
type Result struct {
	Received   int
	Queued     int
	Duplicates int
	Rejected   int
	Failed     int
}

// Complete reports whether every event is in the queue, a known duplicate, or
// rejected for good: only then may Meta be told the webhook was received.
func (r Result) Complete() bool { return r.Failed == 0 }

// Pipeline admits, sends and marks events. Safe for concurrent use.
type Pipeline struct {
	ledger  Ledger
	queue   Queue
	metrics *metrics.Metrics
	opts    Options
	fifo    bool

	queueName  string
	queueAttrs []attribute.KeyValue
	// admit is the process's admission concurrency, shared by its webhooks.
	admit *limiter
	// settling bounds the process's MarkQueued and Release calls together
	// (Options.Concurrency slots), as admit bounds its Acquire calls.
	settling chan struct{}
}

// New returns a Pipeline.
func New(l Ledger, q Queue, m *metrics.Metrics, opts Options) (*Pipeline, error) {
	switch {
	case l == nil:
		return nil, errors.New("pipeline: nil ledger")
	case q == nil:
		return nil, errors.New("pipeline: nil queue")
	case m == nil:
		return nil, errors.New("pipeline: nil metrics")
	case opts.QueueURL == "":
		return nil, errors.New("pipeline: empty queue URL")
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 5 * time.Second
	}
	if opts.BackendTimeout <= 0 {
		opts.BackendTimeout = 5 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.LatencyTarget <= 0 {
		opts.LatencyTarget = 250 * time.Millisecond
	}
	if opts.SendConcurrency <= 0 {
		opts.SendConcurrency = 4
	}
	if opts.RenewEvery <= 0 {
		opts.RenewEvery = 10 * time.Second / 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = MaxBatchBytes
	}
	if opts.DeadLetterMaxBytes <= 0 {
		opts.DeadLetterMaxBytes = opts.MaxMessageBytes
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	qa := tracing.QueueAttributes(opts.QueueURL)
	return &Pipeline{ledger: l, queue: q, metrics: m, opts: opts, fifo: strings.HasSuffix(opts.QueueURL, ".fifo"),
		queueName: qa[1].Value.AsString(), queueAttrs: qa,
		admit:    newLimiter(opts.Concurrency, opts.LatencyTarget, m.AdmitConcurrency),
		settling: make(chan struct{}, opts.Concurrency)}, nil
}

// outcome is what became of one event.
type outcome int

const (
	pending outcome = iota
	queued
	duplicate
	tooLarge // can never be sent: rejected for good once released
	failed
)

// item is one event on its way through the pipeline.
type item struct {
	event   webhook.Event
	receipt *ledger.Receipt // set when this request owns the event
	env     envelope.Envelope
	body    []byte
	sent    bool
	outcome outcome
	span    trace.Span // the send's span, from the send until the queue answers
	// admitSpan is a contested event's admission span, open until Await decides.
	admitSpan trace.Span
}

// Process takes a batch to the queue. Admission runs under ctx (the request's
// context); once this request owns events, their send, renewal, mark and release
// run to the end even if ctx is cancelled (the client went away), each under its
// own timeout, so that no item is left `received` for nothing.
func (p *Pipeline) Process(ctx context.Context, b *webhook.Batch, log *zap.Logger) Result {
	arrived := p.opts.Now()
	res := Result{Received: len(b.Events) + len(b.Rejected)}
	p.rejectUnkeyed(ctx, b.Rejected, &res, log)
	for _, e := range b.Errors {
		p.metrics.MetaError()
		log.Warn("webhook reports an error", zap.ByteString("error", clip(e)))
	}

	items := make([]item, len(b.Events))
	for i := range items {
		items[i].event = b.Events[i]
	}
	out := p.newOutbox(context.WithoutCancel(ctx), arrived, log)

	// Admission, feeding the outbox as events become ours (standard queue).
	// On a FIFO queue the whole body is admitted first and then fed to the
	// outbox in body order behind a group gate (the FIFO order requirement,
	// fifo.go): a conversation's events enter the queue in the body's order,
	// and none after one of them that does not.
	var (
		mu        sync.Mutex
		contested []*item
		tried     []ledger.Receipt
	)
	adm := p.newAdmission(ctx, items, log)
	adm.run(ctx, func(j int) {
		it, r, exists := adm.admit(ctx, j)
		switch {
		case it.receipt == nil:
		case p.fifo:
			out.own(it) // renewed while the rest of the body is admitted
		default:
			out.add(it)
		}
		if exists {
			mu.Lock()
			contested = append(contested, it)
			tried = append(tried, r)
			mu.Unlock()
		}
	})
	out.flush()

	// Events a sibling request holds: wait for all of them together, sending
	// those that become ours (released by the sibling, or stale) at once.
	if len(contested) > 0 {
		adms, errs := p.ledger.Await(ctx, tried, func(i int, r ledger.Receipt) {
			it := contested[i]
			it.receipt = &r
			if it.admitSpan != nil { // before the outbox may settle it
				endAdmit(it.admitSpan, it)
				it.admitSpan = nil
			}
			if r.TakenOver {
				log.Warn("event was left received by a request that stopped renewing it (crashed, or its write timed out); sending it again",
					logging.Key(it.event.Key))
			}
			if p.fifo {
				out.own(it)
			} else {
				out.add(it)
				out.flush()
			}
		})
		for i, it := range contested {
			p.decided(ctx, it, adms[i], errs[i], log)
		}
	}
	if p.fifo {
		out.gate = newGroupGate(items)
		for i := range items {
			if items[i].receipt != nil {
				out.add(&items[i])
			}
		}
	}
	out.close()

	for i := range items {
		it := &items[i]
		var result string
		switch it.outcome {
		case queued:
			res.Queued++
			result = metrics.ResultQueued
		case duplicate:
			res.Duplicates++
			result = metrics.ResultDuplicate
		case tooLarge:
			res.Rejected++
			result = metrics.ResultTooLarge
		default:
			res.Failed++
			result = metrics.ResultFailed
		}
		p.metrics.Event(string(it.event.Kind), result)
	}
	return res
}

// acquire writes it's ledger item; it reports exists, with the receipt tried,
// when another request has the key already. Called holding an admission slot,
// which it frees, telling the limiter how long the write took.
func (p *Pipeline) acquire(ctx context.Context, it *item, log *zap.Logger) (ledger.Receipt, bool) {
	ctx, span := p.startAdmit(ctx, it)
	start := time.Now()
	r, err := p.ledger.Acquire(ctx, it.event.Key)
	p.admit.observe(time.Since(start), err != nil && !errors.Is(err, ledger.ErrExists))
	if errors.Is(err, ledger.ErrExists) {
		it.admitSpan = span // ended when Await has decided (decided)
		return r, true
	}
	defer endAdmit(span, it)
	switch {
	case err == nil:
		it.receipt = &r
	default:
		it.outcome = failed
		if ctx.Err() == nil {
			p.metrics.BackendError(metrics.BackendDynamoDB, OpAdmit)
		}
		log.Error("admit failed", logging.Key(it.event.Key), zap.Error(err))
		if r.Token != "" {
			// The put may have landed without an answer (a timeout): remove it,
			// fenced by its token, so that Meta's retry acquires the key at once
			// instead of waiting out the resend window for a take-over.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.BackendTimeout)
			defer cancel()
			if released, err := p.ledger.Release(rctx, r); err != nil {
				log.Warn("could not release an acquire that may have landed; the resend window recovers it",
					logging.Key(it.event.Key), zap.Error(err))
			} else if released {
				log.Info("an acquire that timed out had landed: released", logging.Key(it.event.Key))
			}
		}
	}
	return ledger.Receipt{}, false
}

// decided records what Await made of a contested event.
func (p *Pipeline) decided(ctx context.Context, it *item, adm ledger.Admission, err error, log *zap.Logger) {
	if it.admitSpan != nil {
		defer endAdmit(it.admitSpan, it)
	}
	key := it.event.Key
	switch {
	case adm.Receipt != nil:
		// Ours: the outbox settled it.
	case errors.Is(err, ledger.ErrInFlight):
		it.outcome = failed
		log.Warn("event is being enqueued by another request; asking Meta to retry", logging.Key(key))
	case err != nil:
		it.outcome = failed
		if ctx.Err() == nil {
			p.metrics.BackendError(metrics.BackendDynamoDB, OpAdmit)
		}
		log.Error("admit failed", logging.Key(key), zap.Error(err))
	case adm.Duplicate:
		it.outcome = duplicate
		log.Info("duplicate event", logging.Key(key), zap.String("state", string(adm.State)))
	default:
		it.outcome = failed
		log.Error("admit returned neither a receipt nor a duplicate", logging.Key(key))
	}
}

// each runs fn(0..n-1) on at most workers goroutines and waits for them.
func (p *Pipeline) each(n, workers int, fn func(i int)) {
	workers = min(n, workers)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// clip bounds raw JSON quoted in a log line.
func clip(raw []byte) []byte {
	const limit = 2048
	if len(raw) <= limit {
		return raw
	}
	return fmt.Appendf(nil, "%s…(%d bytes)", raw[:limit], len(raw))
}
