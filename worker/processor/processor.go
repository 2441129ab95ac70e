package processor

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/deadletter"
)

// Processor states reported by Status.
const (
	StateStarting   = "starting"
	StatePolling    = "polling"
	StateProcessing = "processing"
	StatePaused     = "paused" // the ledger breaker is open
	StateStopping   = "stopping"
	StateStopped    = "stopped"
)

// Message attributes set on a dead-lettered message, besides the original
// ones: the contract of shared/deadletter (with key and kind).
const (
	DLQAttrError     = deadletter.AttrError
	DLQAttrReason    = deadletter.AttrReason // failed, poison or ledger-expired
	DLQAttrProcessor = deadletter.AttrProcessor
	DLQAttrMessageID = deadletter.AttrMessageID
	DLQAttrAttempt   = deadletter.AttrAttempt
)

// maxReasonLen bounds an error kept in the ledger or a message attribute.
const maxReasonLen = 1024

// DefaultMaxMessageBytes is Options.MaxMessageBytes's default: SQS's former
// limit on one message, which every queue accepts. The worker reads the DLQ's
// own MaximumMessageSize at start.
const DefaultMaxMessageBytes = 256 * 1024

// maxMessageAttributes is SQS's limit on a message's attributes.
const maxMessageAttributes = 10

// receiveGrace is how long a receive may run past its long-poll wait before it
// is abandoned: a connection dropped without a reset would stall it for
// minutes.
const receiveGrace = 10 * time.Second

// errReceiveTimeout marks a receive abandoned after ReceiveWait+receiveGrace.
var errReceiveTimeout = errors.New("no answer within the long-poll bound")

// Status is one processor's state, in /health/detailed's shape.
type Status struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	ProcessedCount int64      `json:"processed_count"`
	ErrorsCount    int64      `json:"errors_count"`
	InFlight       int64      `json:"in_flight"`
	LastPollAt     *time.Time `json:"last_poll_at"`
}

// processor receives from the queue and handles what it receives, one receive
// batch at a time, the batch's messages concurrently (on a FIFO queue, one
// message group's messages in order: groups.go).
type processor struct {
	id      string
	opts    *Options
	deps    *Deps
	metrics *Metrics
	breaker *breaker
	log     *zap.Logger
	del     *deleter
	// hard ends when the shutdown grace period is over; final, a short while
	// later, bounds the writes that record results (see Pool.Run). Both are
	// set by run before anything uses them.
	hard, final context.Context
	// receiving bounds the receives; it ends only when a shutdown abandons
	// polls that outlived its grace period. polls counts them (shared by the
	// pool). Both are set by Pool before run starts.
	receiving context.Context
	polls     *polls

	state     atomic.Value // string
	processed atomic.Int64
	errs      atomic.Int64
	inFlight  atomic.Int64
	lastPoll  atomic.Int64 // unix nanoseconds; 0 = never
}

func (pr *processor) status() Status {
	s := Status{ID: pr.id, Status: StateStarting, ProcessedCount: pr.processed.Load(), ErrorsCount: pr.errs.Load(),
		InFlight: pr.inFlight.Load()}
	if v, ok := pr.state.Load().(string); ok {
		s.Status = v
	}
	if ns := pr.lastPoll.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		s.LastPollAt = &t
	}
	return s
}

// result records how an event's handling ended.
func (pr *processor) result(r string) {
	pr.metrics.events.WithLabelValues(r).Inc()
	switch r {
	case ResultDone, ResultDuplicate:
		pr.processed.Add(1)
	case ResultFailed, ResultPoison, ResultExpired:
		pr.processed.Add(1)
		pr.errs.Add(1)
	case ResultRetry, ResultLeaseLost, ResultBackendError:
		pr.errs.Add(1)
	}
}

func receiveCount(m sqstypes.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

func truncate(s string) string {
	if len(s) <= maxReasonLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxReasonLen], "")
}
