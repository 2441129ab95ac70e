// Package metrics holds ingest's Prometheus collectors, registered on a registry
// the caller owns (never the global one).
package metrics

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Event results, the `result` label of events_total.
const (
	ResultQueued    = "queued"
	ResultDuplicate = "duplicate"
	ResultRejected  = "rejected"
	// ResultTooLarge: the event can never fit in one SQS message.
	ResultTooLarge = "too_large"
	ResultFailed   = "failed"
)

// Rejection reasons, the `reason` label of rejected_total.
const (
	// RejectNoID: an object with no id (or no status), so no event key.
	RejectNoID = "no_id"
	// RejectTooLarge: larger than the queue's MaximumMessageSize.
	RejectTooLarge = "too_large"
)

// Backends, the `backend` label of backend_errors_total.
const (
	BackendDynamoDB = "dynamodb"
	BackendSQS      = "sqs"
)

// Metrics are ingest's collectors. Safe for concurrent use.
type Metrics struct {
	events        *prometheus.CounterVec
	duplicates    prometheus.Counter
	metaErrors    prometheus.Counter
	requests      *prometheus.CounterVec
	inFlight      prometheus.Gauge
	admitLimit    prometheus.Gauge
	latency       *prometheus.HistogramVec
	backendErrors *prometheus.CounterVec
	secretMatches *prometheus.CounterVec
	tokenMatches  *prometheus.CounterVec
	rejected      *prometheus.CounterVec
}

// New creates the collectors and registers them, with the Go runtime and process
// collectors, on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "wahook", "ingest"
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Webhook events by kind (message, status) and result (queued, duplicate, rejected, failed).",
		}, []string{"kind", "result"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "duplicates_total",
			Help: "Events already known to the ledger (queued, processing, done or failed) when they arrived again.",
		}),
		metaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_reported_errors_total",
			Help: "Error objects Meta reported in value.errors.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_requests_total",
			Help: "Requests to /webhook by method and status code.",
		}, []string{"method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_requests_in_flight",
			Help: "Requests to /webhook being handled now.",
		}),
		admitLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "admit_concurrency",
			Help: "Ledger writes (Acquire) admission lets the process's webhooks have in flight together now; it falls while DynamoDB answers slower than WAHOOK_ADMIT_LATENCY_TARGET.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_request_duration_seconds",
			Help:    "Latency of /webhook requests by method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"method"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "backend_errors_total",
			Help: "Failed DynamoDB and SQS calls by backend and operation.",
		}, []string{"backend", "operation"}),
		secretMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "signature_matches_total",
			Help: "Webhooks whose X-Hub-Signature-256 matched, by the index of the app secret that matched (0 = first configured); a secret whose count stops growing can be retired.",
		}, []string{"index"}),
		tokenMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "verify_token_matches_total",
			Help: "Subscription handshakes accepted, by the index of the verify token that matched (0 = first configured).",
		}, []string{"index"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Events accepted but not enqueued, by reason (no_id, too_large): recorded as rejected in the ledger, the raw event in the DLQ.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{
		m.events, m.duplicates, m.metaErrors, m.requests, m.inFlight, m.admitLimit, m.latency, m.backendErrors,
		m.secretMatches, m.tokenMatches, m.rejected,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// Event counts one event's result.
func (m *Metrics) Event(kind, result string) {
	m.events.WithLabelValues(kind, result).Inc()
	if result == ResultDuplicate {
		m.duplicates.Inc()
	}
}

// Rejected counts one event recorded as rejected.
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// MetaError counts one error object Meta reported in a webhook.
func (m *Metrics) MetaError() { m.metaErrors.Inc() }

// AdmitConcurrency sets the admission concurrency gauge.
func (m *Metrics) AdmitConcurrency(n int) { m.admitLimit.Set(float64(n)) }

// RequestStarted counts a /webhook request in flight until its RequestDone.
func (m *Metrics) RequestStarted() { m.inFlight.Inc() }

// RequestDone records one finished /webhook request.
func (m *Metrics) RequestDone(method string, code int, took time.Duration) {
	m.inFlight.Dec()
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(method).Observe(took.Seconds())
}

// BackendError counts one failed backend call.
func (m *Metrics) BackendError(backend, operation string) {
	m.backendErrors.WithLabelValues(backend, operation).Inc()
}

// Credentials creates the match counters of the configured app secrets and
// verify tokens at zero, so that a secret nobody signs with shows as a flat
// series rather than none.
func (m *Metrics) Credentials(appSecrets, verifyTokens int) {
	for i := range appSecrets {
		m.secretMatches.WithLabelValues(strconv.Itoa(i))
	}
	for i := range verifyTokens {
		m.tokenMatches.WithLabelValues(strconv.Itoa(i))
	}
}

// SignatureMatched counts one webhook signed with the app secret at index.
func (m *Metrics) SignatureMatched(index int) {
	m.secretMatches.WithLabelValues(strconv.Itoa(index)).Inc()
}

// VerifyTokenMatched counts one handshake with the verify token at index.
func (m *Metrics) VerifyTokenMatched(index int) {
	m.tokenMatches.WithLabelValues(strconv.Itoa(index)).Inc()
}

// KnownBackendOperation exports backend errors for one operation as 0 from the
// start, so that a dashboard shows "none yet" rather than "no data".
func (m *Metrics) KnownBackendOperation(backend, operation string) {
	m.backendErrors.WithLabelValues(backend, operation)
}
