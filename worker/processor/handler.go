// Package processor is the worker's processing loop: processors that long-poll
// SQS, claim each event in the ledger under a lease, run a Handler while
// heartbeating, then complete and delete — or give back, fail, or dead-letter.
//
// Go users plug in their own Handler:
//
//	pool, err := processor.New(processor.Options{...}, processor.Deps{
//		Ledger: store, Queue: sqsClient, Handler: myHandler,
//	})
//	err = pool.Run(ctx) // until ctx is cancelled, then a graceful shutdown
//
// The guarantee is DESIGN.md's: each event is completed exactly once; a handler
// may be invoked again after a crash or a lost lease, so it receives the event
// key and the attempt number (a fencing token) to keep its own side effects
// idempotent.
package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wahook/wahook/shared/envelope"
)

// Event is what a Handler receives: one decoded queue message and the claim
// under which it runs.
type Event struct {
	// Envelope is the decoded queue message body.
	Envelope envelope.Envelope
	// Body is the queue message body exactly as received (the envelope's JSON).
	Body []byte
	// Attempt is the ledger's attempt number for this claim: the fencing token.
	// It grows with every claim of the key, so a side effect written with it
	// can refuse an older attempt.
	Attempt int
	// ProcessorID is the processor running the handler (the ledger owner).
	ProcessorID string
	// MessageID is the SQS message id.
	MessageID string
	// ReceiveCount is SQS's ApproximateReceiveCount for the message.
	ReceiveCount int
}

// Key is the event key (the ledger key).
func (e Event) Key() string { return e.Envelope.Key }

// Handler does the work for one event. It returns nil when done, a Permanent
// error when the event can never succeed, or any other error to be retried with
// backoff (RetryAfter asks for a specific delay). It must return promptly once
// ctx is done: the context ends at the handler timeout, at a lost lease and at
// the end of a shutdown's grace period.
type Handler interface {
	Handle(ctx context.Context, ev Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Chain runs handlers in order and stops at the first error, which it returns
// as is (its classification intact). Every handler in a chain sees every
// retry, so each must be idempotent.
func Chain(handlers ...Handler) Handler {
	hs := append([]Handler(nil), handlers...)
	return HandlerFunc(func(ctx context.Context, ev Event) error {
		for _, h := range hs {
			if err := h.Handle(ctx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// PermanentError marks a failure that no retry can fix.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent: the event is failed in the ledger, sent to
// the dead-letter queue and deleted. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is marked permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError is a retryable failure that asks for a specific delay before
// the next attempt (an HTTP 429's Retry-After, say).
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

// Unwrap returns the cause.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter marks err as retryable after delay instead of the exponential
// backoff. RetryAfter(d, nil) is nil.
func RetryAfter(delay time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Delay: delay, Err: err}
}

// RequestedDelay returns the delay a RetryAfter error asked for.
func RequestedDelay(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) && r.Delay > 0 {
		return r.Delay, true
	}
	return 0, false
}

// Causes of a handler context's end, readable with context.Cause.
var (
	// ErrLeaseLost: a heartbeat found the claim taken by another processor.
	ErrLeaseLost = errors.New("processor: lease lost")
	// ErrShutdown: the shutdown grace period ended before the handler did.
	ErrShutdown = errors.New("processor: shutting down")
	// ErrHandlerTimeout: the handler ran longer than the handler timeout.
	ErrHandlerTimeout = errors.New("processor: handler timeout")
	// ErrHandlerAbandoned: the handler was still running abandonGrace after
	// its context ended; the processor stopped waiting for it.
	ErrHandlerAbandoned = errors.New("processor: handler ignored its context; abandoned")
)
