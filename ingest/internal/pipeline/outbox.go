package pipeline

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/tracing"
)

// outbox sends the events a request owns in batches as they come, marks them
// queued (or releases them) batch by batch, and renews those not yet sent. Its
// calls run under ctx, which outlives the request.
type outbox struct {
	p       *Pipeline
	ctx     context.Context
	arrived time.Time
	log     *zap.Logger

	mu     sync.Mutex
	cur    []*item
	size   int
	unsent map[*item]time.Time // owned, neither queued nor released yet → its last stamp
	prev   chan struct{}       // closed when the previous batch's send returned (FIFO order)

	gate     *groupGate    // FIFO queue: set before the first event is added (fifo.go)
	slots    chan struct{} // SendConcurrency
	batches  sync.WaitGroup
	settlers *crew // settles the sent batches' events, under the process's settle slots
	stop     chan struct{}
	renewer  sync.WaitGroup
}

func (p *Pipeline) newOutbox(ctx context.Context, arrived time.Time, log *zap.Logger) *outbox {
	o := &outbox{
		p: p, ctx: ctx, arrived: arrived, log: log,
		unsent:   map[*item]time.Time{},
		slots:    make(chan struct{}, p.opts.SendConcurrency),
		settlers: newCrew(),
		stop:     make(chan struct{}),
	}
	o.prev = make(chan struct{})
	close(o.prev)
	o.renewer.Go(o.renewLoop)
	return o
}

// own registers an owned event that is not added yet, so that it is renewed.
func (o *outbox) own(it *item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unsent[it] = time.UnixMilli(it.receipt.ReceivedAt)
}

// add takes an owned event; a full batch goes out at once.
func (o *outbox) add(it *item) {
	it.env = envelope.FromEvent(it.event, o.arrived)
	body, err := it.env.Encode()
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		// Encoding fails the same way on every retry.
		it.outcome = tooLarge
		o.log.Error("event rejected for good: cannot encode its envelope", logging.Key(it.event.Key), zap.Error(err))
		o.dispatch([]*item{it}, false)
		return
	}
	it.body = body
	n := entrySize(it)
	if limit := o.p.opts.MaxMessageBytes; n > limit {
		// No retry makes it smaller: answering 503 for it would have Meta
		// retry the whole webhook for days.
		it.outcome = tooLarge
		o.log.Error("event rejected for good: too large for one SQS message", logging.Key(it.event.Key),
			zap.Int("bytes", n), zap.Int("limit", limit))
		o.dispatch([]*item{it}, false)
		return
	}
	if _, owned := o.unsent[it]; !owned {
		o.unsent[it] = time.UnixMilli(it.receipt.ReceivedAt)
	}
	// SQS bounds a batch's total by the queue's MaximumMessageSize too.
	if o.size+n > o.p.opts.MaxMessageBytes {
		o.dispatch(o.cur, true)
		o.cur, o.size = nil, 0
	}
	o.cur = append(o.cur, it)
	o.size += n
	if len(o.cur) == MaxBatchEntries {
		o.dispatch(o.cur, true)
		o.cur, o.size = nil, 0
	}
}

// flush sends a partial batch: no more events are coming soon.
func (o *outbox) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cur) > 0 {
		o.dispatch(o.cur, true)
		o.cur, o.size = nil, 0
	}
}

// dispatch sends batch (when send) on a goroutine, which then hands each of
// its events to the settlers as a process settle slot frees; close waits for
// both. Called with o.mu held.
func (o *outbox) dispatch(batch []*item, send bool) {
	prev, done := o.prev, make(chan struct{})
	if send && o.p.fifo {
		o.prev = done
	} else {
		close(done)
	}
	o.batches.Go(func() {
		if send {
			if o.p.fifo {
				<-prev // one batch at a time, in body order
			}
			o.slots <- struct{}{}
			if o.gate != nil {
				o.p.sendGated(o.ctx, batch, o.gate, o.log)
			} else {
				o.p.sendBatch(o.ctx, batch, o.log)
			}
			if o.p.fifo {
				close(done)
			}
			<-o.slots
		}
		for _, it := range batch {
			o.p.settling <- struct{}{} // first: an event waiting for a slot holds no goroutine
			o.settlers.Go(func() {
				defer func() { <-o.p.settling }()
				o.p.settle(o.ctx, it, o.log)
				o.mu.Lock()
				delete(o.unsent, it)
				o.mu.Unlock()
			})
		}
	})
}

// close sends what is left, waits for every batch to be settled and stops
// renewing.
func (o *outbox) close() {
	o.flush()
	o.batches.Wait()
	o.settlers.Wait()
	close(o.stop)
	o.renewer.Wait()
}

// renewLoop renews each owned, unsent event once its last stamp is RenewEvery
// old, until close. It looks every RenewEvery/2, so an event is renewed at most
// 1.5 × RenewEvery (half the resend window) after its last stamp, and an event
// that is sent within RenewEvery of its Acquire is never renewed: under
// overload, renewals must not pile writes on a backend that is already slow.
func (o *outbox) renewLoop() {
	t := time.NewTicker(o.p.opts.RenewEvery / 2)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		now := o.p.opts.Now()
		o.mu.Lock()
		var due []*item
		for it, stamp := range o.unsent {
			if now.Sub(stamp) >= o.p.opts.RenewEvery {
				due = append(due, it)
			}
		}
		o.mu.Unlock()
		o.p.each(len(due), min(startConcurrency, o.p.opts.Concurrency), func(i int) {
			it := due[i]
			ctx, cancel := context.WithTimeout(o.ctx, o.p.opts.BackendTimeout)
			defer cancel()
			if _, err := o.p.ledger.Renew(ctx, *it.receipt); err != nil {
				// The next look tries again; a window is six looks.
				o.p.metrics.BackendError(metrics.BackendDynamoDB, OpRenew)
				o.log.Warn("renew failed", logging.Key(it.event.Key), zap.Error(err))
				return
			}
			o.mu.Lock()
			if _, ok := o.unsent[it]; ok {
				o.unsent[it] = now
			}
			o.mu.Unlock()
		})
		if len(due) > 0 {
			o.log.Debug("renewed owned events not yet sent", zap.Int("events", len(due)))
		}
	}
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
