package processor

import (
	"fmt"
	"strconv"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
)

// Results an event's handling ends in (the "result" label of
// wahook_worker_events_total).
const (
	// ResultDone: handled and completed.
	ResultDone = "done"
	// ResultRetry: the handler failed retryably; given back with a backoff.
	ResultRetry = "retry"
	// ResultFailed: failed for good (permanent error or attempts exhausted);
	// in the dead-letter queue.
	ResultFailed = "failed"
	// ResultPoison: the message body was not an envelope; in the dead-letter queue.
	ResultPoison = "poison"
	// ResultExpired: no ledger item for an envelope older than the item TTL;
	// not run, in the dead-letter queue (reason ledger-expired).
	ResultExpired = "ledger_expired"
	// ResultDuplicate: the event was already done or failed; message deleted.
	ResultDuplicate = "duplicate"
	// ResultConflict: another processor holds a live lease; message left.
	ResultConflict = "conflict"
	// ResultLeaseLost: the claim was taken over while the handler ran.
	ResultLeaseLost = "lease_lost"
	// ResultShutdown: cancelled by a shutdown and given back.
	ResultShutdown = "shutdown"
	// ResultBackendError: the ledger or queue failed; message left to reappear.
	ResultBackendError = "backend_error"
	// ResultAbandoned: the handler ignored its context past its deadline; the
	// processor stopped waiting for it and let the lease lapse.
	ResultAbandoned = "abandoned"
	// ResultHeldBack: FIFO only; an earlier message of its group did not
	// finish, so it was released unhandled to come back after that one.
	ResultHeldBack = "held_back"
)

// Metrics are the processors' Prometheus metrics.
type Metrics struct {
	events          *prometheus.CounterVec
	duplicates      prometheus.Counter
	claimConflicts  prometheus.Counter
	leasesLost      prometheus.Counter
	heartbeats      *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	breakerOpen     prometheus.Gauge
	received        prometheus.Counter
	receiveErrors   prometheus.Counter
	deadLettered    *prometheus.CounterVec
	reopened        prometheus.Counter
	deletes         *prometheus.CounterVec
	backendErrors   *prometheus.CounterVec
	resent          prometheus.Counter
	abandoned       prometheus.Counter
	receiveAge      prometheus.Histogram
}

// NewMetrics creates the metrics and registers them on reg (use a private
// registry, not the global one).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "wahook", "worker"
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events handled, by result (done, retry, failed, poison, duplicate, conflict, lease_lost, shutdown, backend_error, abandoned, held_back)."},
			[]string{"result"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "duplicates_total",
			Help: "Deliveries of events already done or failed (deleted without handling)."}),
		claimConflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "claim_conflicts_total",
			Help: "Claims refused because another processor holds a live lease."}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "leases_lost_total",
			Help: "Claims given up while the handler ran or its result was written: taken over by another processor, or their lease ran out with no extension answered (those also count as heartbeats_total{result=\"lease_lapsed\"})."}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "heartbeats_total",
			Help: "Heartbeats (visibility change and lease extension), by result (ok, error, lease_lost: an extension refused, the event claimed by another; lease_lapsed: no extension answered before the lease's end)."}, []string{"result"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "handler_duration_seconds",
			Help:    "Handler run time, by outcome (ok, error).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "in_flight",
			Help: "Messages being handled now."}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "breaker_open",
			Help: "1 while the ledger breaker is open (receiving stopped), else 0."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_received_total",
			Help: "Messages received from the queue."}),
		receiveErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receive_errors_total",
			Help: "Failed ReceiveMessage calls."}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "handler_abandoned_total",
			Help: "Handler runs still going a grace period past their deadline (they ignore their context): no longer waited for, their lease left to lapse."}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "resent_total",
			Help: "Messages sent again as fresh copies at their last receive after backend trouble (kept out of the dead-letter queue)."}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_lettered_total",
			Help: "Messages sent to the dead-letter queue, by reason (failed, poison, ledger-expired)."}, []string{"reason"}),
		reopened: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reopened_total",
			Help: "Failed events reopened because their dead letter was moved back to the queue."}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deletes_total",
			Help: "Message deletes, by result (ok, error)."}, []string{"result"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "backend_errors_total",
			Help: "Failed ledger and queue calls, by operation."}, []string{"op"}),
		receiveAge: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "receive_age_seconds",
			Help:    "Age of a message when received: from SQS's SentTimestamp to the receive (every receive of it, retries included).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}}),
	}
	for _, c := range []prometheus.Collector{m.events, m.duplicates, m.claimConflicts, m.leasesLost, m.heartbeats,
		m.handlerDuration, m.inFlight, m.breakerOpen, m.received, m.receiveErrors, m.deadLettered, m.reopened, m.deletes, m.backendErrors, m.resent, m.abandoned,
		m.receiveAge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	// Every known label value exported from the start, as 0: a dashboard
	// then shows "none yet" instead of "no data".
	for _, r := range []string{ResultDone, ResultRetry, ResultFailed, ResultPoison, ResultDuplicate, ResultConflict,
		ResultLeaseLost, ResultShutdown, ResultBackendError} {
		m.events.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error", "lease_lost", "lease_lapsed"} {
		m.heartbeats.WithLabelValues(r)
	}
	for _, r := range []string{ResultPoison, ResultFailed} {
		m.deadLettered.WithLabelValues(r)
	}
	return m, nil
}

// observeAge records each message's age at receive from its SentTimestamp
// (epoch milliseconds); a message without one is skipped.
func (m *Metrics) observeAge(msgs []sqstypes.Message, now time.Time) {
	for _, msg := range msgs {
		ms, err := strconv.ParseInt(msg.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64)
		if err != nil {
			continue
		}
		m.receiveAge.Observe(max(0, now.Sub(time.UnixMilli(ms)).Seconds()))
	}
}
