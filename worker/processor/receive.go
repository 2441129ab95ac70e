package processor

// The receive loop: long polls, the ledger breaker between them, and a batch's messages handed to handle.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awserr"
)

// run receives until stop ends; handlers run under hard, result writes under
// final.
func (pr *processor) run(stop, hard, final context.Context) {
	pr.hard, pr.final = hard, final
	pr.del = newDeleter(pr)
	var deleterDone sync.WaitGroup
	deleterDone.Go(pr.del.run)
	defer func() {
		pr.state.Store(StateStopping)
		pr.del.close()
		deleterDone.Wait()
		pr.state.Store(StateStopped)
	}()

	failures := 0
	for stop.Err() == nil {
		if pr.breaker.State() != BreakerClosed {
			pr.state.Store(StatePaused)
		}
		trial, err := pr.breaker.Wait(stop)
		if err != nil {
			return
		}
		if !pr.polls.begin() { // shutting down: no new receive
			if trial {
				pr.breaker.endTrial()
			}
			return
		}
		pr.state.Store(StatePolling)
		maxMessages := pr.opts.MaxMessages
		if trial {
			// Half-open: one message tells whether the ledger works again.
			maxMessages = 1
		}
		// Taken before the call: SQS's 12-hour visibility limit runs from the
		// receive, never earlier than this.
		receivedAt := time.Now()
		pr.lastPoll.Store(receivedAt.UnixNano()) // a long poll under way counts
		// Not under stop: a poll in flight at shutdown runs to its end (see polls).
		msgs, err := pr.receive(pr.receiving, maxMessages)
		pr.polls.end()
		pr.lastPoll.Store(time.Now().UnixNano())
		if err != nil {
			if trial {
				pr.breaker.endTrial()
			}
			if stop.Err() != nil {
				return
			}
			if errors.Is(err, errReceiveTimeout) {
				// Not a backend failure to back off from: poll again at once.
				// Messages the abandoned call may have taken reappear after
				// their visibility timeout.
				pr.metrics.receiveErrors.Inc()
				pr.log.Warn("receive abandoned; polling again", zap.Error(err))
				continue
			}
			failures++
			pr.errs.Add(1)
			pr.metrics.receiveErrors.Inc()
			pr.log.Warn("receive failed", zap.Int("consecutive_failures", failures),
				zap.Bool("transient", awserr.Transient(err)), zap.Error(err))
			sleep(stop, backoff(failures, pr.opts.BackendRetryBase, 10*time.Second))
			continue
		}
		failures = 0
		if len(msgs) > 0 {
			pr.state.Store(StateProcessing)
			pr.metrics.received.Add(float64(len(msgs)))
			pr.metrics.observeAge(msgs, time.Now())
			pr.handleBatch(stop, hard, msgs, receivedAt)
		}
		if trial {
			pr.breaker.endTrial()
		}
	}
}

// receive long-polls for up to maxMessages messages, bounded by ReceiveWait
// plus receiveGrace; receiving ends only when a shutdown abandons its polls.
func (pr *processor) receive(receiving context.Context, maxMessages int) ([]sqstypes.Message, error) {
	ctx, cancel := context.WithTimeout(receiving, pr.opts.ReceiveWait+receiveGrace)
	defer cancel()
	out, err := pr.deps.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &pr.opts.QueueURL,
		MaxNumberOfMessages:         int32(maxMessages),
		WaitTimeSeconds:             int32(pr.opts.ReceiveWait / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: pr.systemAttributes(),
	})
	if err != nil {
		if receiving.Err() == nil && ctx.Err() != nil {
			return nil, fmt.Errorf("receive from %s: %w (%s): %w", pr.opts.QueueURL, errReceiveTimeout,
				pr.opts.ReceiveWait+receiveGrace, err)
		}
		return nil, fmt.Errorf("receive from %s: %w", pr.opts.QueueURL, err)
	}
	return out.Messages, nil
}
