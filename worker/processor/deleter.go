package processor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awserr"
)

// deletion is one message to delete, with the fields its log lines need.
type deletion struct {
	receipt string
	log     *zap.Logger
	ctx     context.Context // the message's span, when traced; nil for none
	span    trace.Span      // the delete's span, from add until the queue answers
	// done, when set, runs once the queue answered for this entry (or the
	// call failed): the message's heartbeat stops there.
	done func()
}

// deleter batches one processor's deletes into DeleteMessageBatch calls of up
// to ten, flushed when full or DeleteFlushInterval after the first entry.
type deleter struct {
	p   *processor
	in  chan deletion
	out chan struct{} // closed when run has flushed everything and returned
}

func newDeleter(p *processor) *deleter {
	return &deleter{p: p, in: make(chan deletion, 10), out: make(chan struct{})}
}

// add queues a delete. It must not be called after close.
func (d *deleter) add(del deletion) {
	if del.ctx != nil {
		_, del.span = d.p.startDelete(del.ctx)
	}
	d.in <- del
}

// close flushes what is queued and waits for it.
func (d *deleter) close() {
	close(d.in)
	<-d.out
}

func (d *deleter) run() {
	defer close(d.out)
	var batch []deletion
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			d.flush(batch)
			batch = nil
		}
	}
	for {
		select {
		case del, ok := <-d.in:
			if !ok {
				flush()
				return
			}
			batch = append(batch, del)
			if len(batch) == 10 {
				flush()
			} else if len(batch) == 1 {
				timer.Reset(d.p.opts.DeleteFlushInterval)
			}
		case <-timer.C:
			flush()
		}
	}
}

// flush deletes a batch, retrying transient failures of the call; per-entry
// failures are logged and counted (the message reappears and is then deleted
// as a duplicate: the ledger already says done or failed).
func (d *deleter) flush(batch []deletion) {
	p := d.p
	defer func() {
		for _, del := range batch {
			if del.done != nil {
				del.done()
			}
		}
	}()
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(batch))
	for i, del := range batch {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String("m" + strconv.Itoa(i)), ReceiptHandle: aws.String(del.receipt)}
	}
	// Under final: the last flush at shutdown must not outlast its bound.
	ctx := p.final
	if ctx == nil { // a processor that never ran
		ctx = context.Background()
	}
	var out *sqs.DeleteMessageBatchOutput
	err := p.retry(ctx, "delete", false, func(ctx context.Context) error {
		var err error
		out, err = p.deps.Queue.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &p.opts.QueueURL, Entries: entries})
		return err
	})
	if err != nil {
		p.metrics.deletes.WithLabelValues("error").Add(float64(len(batch)))
		for _, del := range batch {
			endDelete(del.span, err)
			del.log.Error("delete message failed; it will come back and be deleted as a duplicate",
				zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
		}
		return
	}
	failed := make(map[string]sqstypes.BatchResultErrorEntry, len(out.Failed))
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = f
	}
	for i, del := range batch {
		if f, ok := failed["m"+strconv.Itoa(i)]; ok {
			endDelete(del.span, fmt.Errorf("delete refused: %s", aws.ToString(f.Code)))
			p.metrics.deletes.WithLabelValues("error").Inc()
			del.log.Error("delete message failed; it will come back and be deleted as a duplicate",
				zap.String("code", aws.ToString(f.Code)), zap.String("reason", aws.ToString(f.Message)))
			continue
		}
		endDelete(del.span, nil)
		p.metrics.deletes.WithLabelValues("ok").Inc()
		del.log.Debug("message deleted")
	}
}
