// Package pipeline takes a parsed webhook to the queue: admit every event in the
// ledger, send the admitted ones to SQS in batches, then mark them queued — or
// release them when their send failed, so that Meta's retry delivers them again.
//
// The pipeline never reports an event as handled unless it is in the queue or
// the ledger already knew it: a caller answers Meta 200 only for a Result with
// no Failed events.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
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
	Admit(ctx context.Context, key string) (ledger.Admission, error)
	MarkQueued(ctx context.Context, r ledger.Receipt) (bool, error)
	Release(ctx context.Context, r ledger.Receipt) (bool, error)
	// For rejected events (reject.go).
	MarkRejected(ctx context.Context, r ledger.Receipt, reason string) (bool, error)
	Reject(ctx context.Context, key, reason string) (bool, error)
	Get(ctx context.Context, key string) (ledger.Item, error)
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
	// BackendTimeout bounds one MarkQueued or Release (default 5s).
	BackendTimeout time.Duration
	// Concurrency is how many ledger or SQS calls one webhook runs at once
	// (default 16).
	Concurrency int
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
		opts.Concurrency = 16
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
		queueName: qa[1].Value.AsString(), queueAttrs: qa}, nil
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
}

// Process takes a batch to the queue. Admission runs under ctx (the request's
// context); once this request owns events, their send, mark and release run to
// the end even if ctx is cancelled (the client went away), each under its own
// timeout, so that no item is left `received` for nothing.
func (p *Pipeline) Process(ctx context.Context, b *webhook.Batch, log *zap.Logger) Result {
	arrived := p.opts.Now()
	res := Result{Received: len(b.Events) + len(b.Rejected)}
	p.rejectUnkeyed(ctx, b.Rejected, &res, log)
	for _, e := range b.Errors {
		p.metrics.MetaError()
		log.Warn("webhook reports an error", zap.ByteString("error", clip(e)))
	}

	items := make([]item, len(b.Events))
	p.each(len(items), func(i int) {
		items[i] = item{event: b.Events[i]}
		p.admit(ctx, &items[i], log)
	})

	finish := context.WithoutCancel(ctx)
	var owned []*item
	for i := range items {
		if items[i].receipt != nil {
			owned = append(owned, &items[i])
		}
	}
	var gate *groupGate
	if p.fifo {
		gate = newGroupGate(items) // FIFO order requirement: fifo.go
	}
	p.send(finish, owned, gate, arrived, log)
	p.each(len(owned), func(i int) { p.settle(finish, owned[i], log) })

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

func (p *Pipeline) admit(ctx context.Context, it *item, log *zap.Logger) {
	key := it.event.Key
	ctx, span := p.startAdmit(ctx, it)
	defer endAdmit(span, it)
	adm, err := p.ledger.Admit(ctx, key)
	switch {
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
	case adm.Receipt != nil:
		it.receipt = adm.Receipt
		if adm.Receipt.TakenOver {
			log.Warn("event was left received by a request that never queued it; sending it again", logging.Key(key))
		}
	default:
		it.outcome = failed
		log.Error("admit returned neither a receipt nor a duplicate", logging.Key(key))
	}
}

// send sends the owned items in batches; it sets item.sent for those the queue took.
// On a FIFO queue (gate set) the batches go one after another: fifo.go.
func (p *Pipeline) send(ctx context.Context, owned []*item, gate *groupGate, arrived time.Time, log *zap.Logger) {
	ready := make([]*item, 0, len(owned))
	for _, it := range owned {
		it.env = envelope.FromEvent(it.event, arrived)
		body, err := it.env.Encode()
		if err != nil {
			// Encoding fails the same way on every retry.
			it.outcome = tooLarge
			log.Error("event rejected for good: cannot encode its envelope", logging.Key(it.event.Key), zap.Error(err))
			continue
		}
		it.body = body
		ready = append(ready, it)
	}
	batches := p.batches(ready, log)
	if gate != nil {
		p.sendInOrder(ctx, batches, gate, log)
		return
	}
	p.each(len(batches), func(i int) { p.sendBatch(ctx, batches[i], log) })
}

// batches splits items into SendMessageBatch calls within SQS's limits.
func (p *Pipeline) batches(items []*item, log *zap.Logger) [][]*item {
	var out [][]*item
	var cur []*item
	size := 0
	for _, it := range items {
		n := entrySize(it)
		if n > p.opts.MaxMessageBytes {
			// No retry makes it smaller: answering 503 for it would have Meta
			// retry the whole webhook for days.
			it.outcome = tooLarge
			log.Error("event rejected for good: too large for one SQS message", logging.Key(it.event.Key),
				zap.Int("bytes", n), zap.Int("limit", p.opts.MaxMessageBytes))
			continue
		}
		if len(cur) == MaxBatchEntries || size+n > p.opts.MaxMessageBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, it)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// entrySize is what SQS counts against its size limit: the body and the
// message attributes' names, types and values.
func entrySize(it *item) int {
	const typ = len("String")
	return len(it.body) +
		len(envelope.AttrKey) + typ + len(it.event.Key) +
		len(envelope.AttrKind) + typ + len(it.event.Kind) +
		tracing.TraceparentBytes // when traces are on
}

func (p *Pipeline) sendBatch(ctx context.Context, batch []*item, log *zap.Logger) {
	entries := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, it := range batch {
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(it.body)),
			MessageAttributes: map[string]types.MessageAttributeValue{
				envelope.AttrKey:  {DataType: aws.String("String"), StringValue: aws.String(it.event.Key)},
				envelope.AttrKind: {DataType: aws.String("String"), StringValue: aws.String(string(it.event.Kind))},
			},
		}
		p.startSend(ctx, it, entries[i].MessageAttributes)
		if p.fifo {
			entries[i].MessageGroupId = aws.String(it.env.GroupID())
			entries[i].MessageDeduplicationId = aws.String(it.env.DeduplicationID())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.SendTimeout)
	defer cancel()
	ids := make(map[*item]string, len(batch))
	out, err := p.queue.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(p.opts.QueueURL), Entries: entries})
	defer func() { endSends(batch, ids, err) }()
	if err != nil {
		p.metrics.BackendError(metrics.BackendSQS, OpSendMessageBatch)
		for _, it := range batch {
			log.Error("send to queue failed", logging.Key(it.event.Key), zap.Error(err))
		}
		return
	}
	entry := func(id *string) (*item, bool) {
		i, err := strconv.Atoi(aws.ToString(id))
		if err != nil || i < 0 || i >= len(batch) {
			return nil, false
		}
		return batch[i], true
	}
	for _, s := range out.Successful {
		if it, ok := entry(s.Id); ok {
			it.sent = true
			ids[it] = messageID(s)
			log.Debug("sent to queue", logging.Key(it.event.Key), logging.MessageID(aws.ToString(s.MessageId)))
		}
	}
	for _, f := range out.Failed {
		p.metrics.BackendError(metrics.BackendSQS, OpSendMessage)
		it, ok := entry(f.Id)
		if !ok {
			log.Error("queue refused an entry it was not sent", zap.String("entry_id", aws.ToString(f.Id)))
			continue
		}
		it.sent = false // listed as failed (even if also as successful): trust the failure
		log.Error("queue refused event", logging.Key(it.event.Key), zap.String("code", aws.ToString(f.Code)),
			zap.String("message", aws.ToString(f.Message)), zap.Bool("sender_fault", f.SenderFault))
	}
}

// settle marks a sent item queued, or releases an unsent one (also one
// rejected for good: nothing may be left received).
func (p *Pipeline) settle(ctx context.Context, it *item, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.BackendTimeout)
	defer cancel()
	key := it.event.Key
	if it.sent {
		// The event is in the queue: it is not lost whatever the ledger says.
		it.outcome = queued
		moved, err := p.ledger.MarkQueued(ctx, *it.receipt)
		switch {
		case err != nil:
			p.metrics.BackendError(metrics.BackendDynamoDB, OpMarkQueued)
			log.Warn("event queued but not marked queued; a retry may send it again, which the claim absorbs",
				logging.Key(key), zap.Error(err))
		case !moved:
			log.Info("event queued; its ledger item had already moved on", logging.Key(key))
		default:
			log.Info("event queued", logging.Key(key))
		}
		return
	}
	rejected := it.outcome == tooLarge
	if rejected && p.rejecting() {
		if p.rejectTooLarge(ctx, it, log) {
			return // recorded: rejected in the ledger, the raw event in the DLQ
		}
		rejected = false // not recorded: release it and fail, so that Meta's retry records it
	}
	it.outcome = failed
	released, err := p.ledger.Release(ctx, *it.receipt)
	switch {
	case err != nil && rejected:
		// Stay failed: Meta's retry takes the item over and releases it then.
		p.metrics.BackendError(metrics.BackendDynamoDB, OpRelease)
		log.Error("event rejected for good but not released; asking Meta to retry so that it is", logging.Key(key), zap.Error(err))
	case rejected:
		it.outcome = tooLarge
	case err != nil:
		p.metrics.BackendError(metrics.BackendDynamoDB, OpRelease)
		log.Error("event neither queued nor released; Meta's retry takes it over after the resend window",
			logging.Key(key), zap.Error(err))
	case !released:
		log.Info("event not confirmed by the queue, but its ledger item moved on: the send did enqueue",
			logging.Key(key))
	default:
		log.Warn("event released for Meta's retry", logging.Key(key))
	}
}

// each runs fn(0..n-1) on at most Concurrency goroutines and waits for them.
func (p *Pipeline) each(n int, fn func(i int)) {
	workers := min(n, p.opts.Concurrency)
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
