package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/ledger"
)

// Ledger is the part of *ledger.Store the processors use.
type Ledger interface {
	Claim(ctx context.Context, key, owner, token string, lease time.Duration, born time.Time) (ledger.Claim, error)
	Reopen(ctx context.Context, key, owner, token string, lease time.Duration, fence string) (ledger.Claim, error)
	Extend(ctx context.Context, c *ledger.Claim, lease time.Duration) error
	Complete(ctx context.Context, c ledger.Claim) error
	Fail(ctx context.Context, c ledger.Claim, reason string) error
	GiveBack(ctx context.Context, c ledger.Claim, reason string) error
	Retry(ctx context.Context, c ledger.Claim, reason string) error
	Get(ctx context.Context, key string) (ledger.Item, error)
	// Probe is one conditional write, made by the breaker while it is open.
	Probe(ctx context.Context) error
}

// Queue is the part of *sqs.Client the processors use.
type Queue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Deps are what a Pool works with. All are required except Metrics and Log.
type Deps struct {
	Ledger  Ledger
	Queue   Queue
	Handler Handler
	// Metrics defaults to metrics registered on a fresh, unexposed registry.
	Metrics *Metrics
	// Log defaults to a no-op logger.
	Log *zap.Logger
	// Tracer starts the spans of each message's handling (default: a no-op
	// tracer).
	Tracer trace.Tracer
	// Probe checks that the ledger answers again while the breaker is open
	// (default: Ledger.Probe, a conditional write like the ones that failed).
	Probe func(ctx context.Context) error
}

// Options tunes a Pool. Zero values mean the documented defaults, except the
// two queue URLs, which are required.
type Options struct {
	// QueueURL is the queue to receive from.
	QueueURL string
	// DeadLetterURL is where undecodable and failed events are sent.
	DeadLetterURL string

	// Processors is how many processors run (default 4).
	Processors int
	// IDPrefix starts every processor id (default "<host>-<pid>-<random>");
	// processor k's id is "<prefix>-p<k>".
	IDPrefix string
	// VisibilityTimeout is the queue's visibility timeout, which a heartbeat
	// renews (default 20s). Heartbeats run every third of it.
	VisibilityTimeout time.Duration
	// LeaseDuration is the ledger lease a claim takes and a heartbeat renews
	// (default VisibilityTimeout).
	LeaseDuration time.Duration
	// DisableHeartbeat turns heartbeats off (tests of lease expiry).
	DisableHeartbeat bool
	// HandlerTimeout bounds one handler run (default 60s).
	HandlerTimeout time.Duration
	// MaxAttempts is how many handler runs may end in a retryable error
	// before the event fails for good (default 5). Only handler errors count.
	MaxAttempts int
	// MaxInterruptions is how many claims of an event may end without any
	// result — a crash, a lapsed lease, a result write that never landed —
	// before it fails for good, so that an event that crashes its process
	// every time still reaches the dead-letter queue (default 10).
	MaxInterruptions int
	// MaxReceiveCount is the queue's redrive policy maxReceiveCount (0:
	// unknown, or no redrive policy). A message received that often less one
	// whose handler fails retryably is failed and dead-lettered rather than
	// given back, since SQS would redrive it with the ledger left queued.
	MaxReceiveCount int
	// ShutdownTimeout is how long in-flight handlers may run on after the run
	// context ends before they are cancelled and given back (default 25s).
	// The writes that record results then share ShutdownWritesTimeout more,
	// so Run returns within ShutdownTimeout + ShutdownWritesTimeout.
	ShutdownTimeout time.Duration

	// ReceiveWait is the long-poll wait (default 20s, SQS's maximum). It is
	// capped at ShutdownTimeout (whole seconds, at least 1s): at shutdown the
	// polls in flight run to their end, and the events the shutdown gives
	// back wait for them (see polls), so they must end within the grace
	// period. With the defaults (20s, 25s) nothing is capped and a worker
	// stops within ECS's 30s: ShutdownTimeout + ShutdownWritesTimeout.
	ReceiveWait time.Duration
	// MaxMessages is how many messages one receive asks for (default 10).
	MaxMessages int

	// RetryBase and RetryMax shape the backoff before a retryable event is
	// received again: RetryBase × 2^(attempt-1) with jitter, at most RetryMax
	// (defaults 1s and 5m).
	RetryBase time.Duration
	RetryMax  time.Duration

	// BackendTimeout bounds one DynamoDB or SQS call (default 5s).
	BackendTimeout time.Duration
	// BackendAttempts is how many times a call failing with transient backend
	// trouble is tried (default 3), with backoff from BackendRetryBase
	// (default 100ms) doubling up to 2s.
	BackendAttempts  int
	BackendRetryBase time.Duration

	// BreakerThreshold is how many consecutive transient ledger failures open
	// the breaker (default 5). BreakerProbeMin and BreakerProbeMax bound the
	// backoff between probes (defaults 250ms and 5s: a probe is one cheap read,
	// and a short cap resumes work soon after an outage ends).
	BreakerThreshold int
	BreakerProbeMin  time.Duration
	BreakerProbeMax  time.Duration

	// MaxMessageBytes is the dead-letter queue's MaximumMessageSize: a
	// dead-letter copy's body and attributes stay within it (default
	// DefaultMaxMessageBytes; the worker reads the queue's own at start).
	MaxMessageBytes int

	// DeleteFlushInterval is how long a completed message's delete may wait to
	// share a DeleteMessageBatch call (default 50ms).
	DeleteFlushInterval time.Duration
}

func (o *Options) setDefaults() error {
	if o.QueueURL == "" {
		return errors.New("processor: empty queue URL")
	}
	if o.DeadLetterURL == "" {
		return errors.New("processor: empty dead-letter queue URL")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&o.Processors, 4)
	def(&o.VisibilityTimeout, 20*time.Second)
	def(&o.LeaseDuration, o.VisibilityTimeout)
	def(&o.HandlerTimeout, 60*time.Second)
	defInt(&o.MaxAttempts, 5)
	defInt(&o.MaxInterruptions, 10)
	def(&o.ShutdownTimeout, 25*time.Second)
	def(&o.ReceiveWait, 20*time.Second)
	defInt(&o.MaxMessages, 10)
	def(&o.RetryBase, time.Second)
	def(&o.RetryMax, 5*time.Minute)
	def(&o.BackendTimeout, 5*time.Second)
	defInt(&o.BackendAttempts, 3)
	def(&o.BackendRetryBase, 100*time.Millisecond)
	defInt(&o.BreakerThreshold, 5)
	def(&o.BreakerProbeMin, 250*time.Millisecond)
	def(&o.BreakerProbeMax, 5*time.Second)
	def(&o.DeleteFlushInterval, 50*time.Millisecond)
	defInt(&o.MaxMessageBytes, DefaultMaxMessageBytes)
	if o.ReceiveWait > o.ShutdownTimeout {
		o.ReceiveWait = max(time.Second, o.ShutdownTimeout.Truncate(time.Second))
	}
	switch {
	case o.VisibilityTimeout < time.Second:
		return fmt.Errorf("processor: visibility timeout %s is under SQS's 1s", o.VisibilityTimeout)
	case o.ReceiveWait > 20*time.Second:
		return fmt.Errorf("processor: receive wait %s is over SQS's 20s", o.ReceiveWait)
	case o.MaxMessages > 10:
		return fmt.Errorf("processor: max messages %d is over SQS's 10", o.MaxMessages)
	case o.RetryMax < o.RetryBase:
		return fmt.Errorf("processor: retry max %s is under retry base %s", o.RetryMax, o.RetryBase)
	}
	return nil
}
