// Package queuestats exports the depth of the event queue and its dead-letter
// queue as Prometheus gauges, read with GetQueueAttributes by one goroutine
// per process every interval. Both services run it: the backlog must stay
// visible while every worker is down.
//
// SQS answers GetQueueAttributes with approximate counts, and only those: the
// age of the oldest message is a CloudWatch metric (ApproximateAgeOfOldestMessage),
// not an attribute. The processors export what a worker can know honestly
// instead, the age of each message when it is received
// (wahook_worker_receive_age_seconds).
package queuestats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Queue label values.
const (
	QueueSource     = "source"
	QueueDeadLetter = "dead_letter"
)

// Queue is the part of *sqs.Client the poller uses.
type Queue interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// states maps the attributes read to the `state` label.
var states = []struct {
	attr  sqstypes.QueueAttributeName
	label string
}{
	{sqstypes.QueueAttributeNameApproximateNumberOfMessages, "visible"},
	{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, "in_flight"},
	{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed, "delayed"},
}

// Poller reads the queues' depths. Create it with New, run it with Run.
type Poller struct {
	q        Queue
	urls     map[string]string // label → URL
	interval time.Duration
	timeout  time.Duration
	log      *zap.Logger
	messages *prometheus.GaugeVec
	errs     *prometheus.CounterVec
	updated  prometheus.Gauge
}

// New registers the gauges on reg. interval is how often the queues are read.
func New(q Queue, sourceURL, deadLetterURL string, interval, timeout time.Duration, reg prometheus.Registerer, log *zap.Logger) (*Poller, error) {
	switch {
	case q == nil:
		return nil, errors.New("queuestats: nil queue")
	case sourceURL == "" || deadLetterURL == "":
		return nil, errors.New("queuestats: empty queue URL")
	case interval <= 0 || timeout <= 0:
		return nil, errors.New("queuestats: interval and timeout must be positive")
	}
	p := &Poller{
		q: q, urls: map[string]string{QueueSource: sourceURL, QueueDeadLetter: deadLetterURL},
		interval: interval, timeout: timeout, log: log,
		messages: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "wahook", Subsystem: "queue", Name: "messages",
			Help: "Approximate messages in the queue (source, dead_letter) by state (visible, in_flight, delayed), as SQS's GetQueueAttributes reports them."},
			[]string{"queue", "state"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wahook", Subsystem: "queue", Name: "stats_errors_total",
			Help: "Failed GetQueueAttributes reads of the queue depths."}, []string{"queue"}),
		updated: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wahook", Subsystem: "queue", Name: "stats_updated_timestamp_seconds",
			Help: "When the queue depths were last read in full (Unix time)."}),
	}
	for _, c := range []prometheus.Collector{p.messages, p.errs, p.updated} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register queue stats: %w", err)
		}
	}
	return p, nil
}

// Run reads the depths at once and then every interval until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads both queues once.
func (p *Poller) Poll(ctx context.Context) {
	ok := true
	for _, label := range []string{QueueSource, QueueDeadLetter} {
		if err := p.read(ctx, label); err != nil {
			ok = false
			if ctx.Err() != nil {
				return
			}
			p.errs.WithLabelValues(label).Inc()
			p.log.Warn("reading the queue depth failed", zap.String("queue", label), zap.Error(err))
		}
	}
	if ok {
		p.updated.SetToCurrentTime()
	}
}

func (p *Poller) read(ctx context.Context, label string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	names := make([]sqstypes.QueueAttributeName, len(states))
	for i, s := range states {
		names[i] = s.attr
	}
	url := p.urls[label]
	out, err := p.q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return fmt.Errorf("queue attributes of %s: %w", url, err)
	}
	for _, s := range states {
		n, err := strconv.ParseFloat(out.Attributes[string(s.attr)], 64)
		if err != nil {
			return fmt.Errorf("%s of %s: %w", s.attr, url, err)
		}
		p.messages.WithLabelValues(label, s.label).Set(n)
	}
	return nil
}

// Start runs Run on its own goroutine until stop is called (or ctx ends);
// stop waits for it.
func (p *Poller) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
