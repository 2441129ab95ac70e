// Package health checks the backends a service depends on and reports them in
// one shape for /health/detailed.
package health

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/awserr"
)

// Overall statuses.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

// Component statuses.
const (
	Connected    = "connected"
	Disconnected = "disconnected"
)

// Check probes one dependency.
type Check func(ctx context.Context) error

// Component is one dependency's result.
type Component struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	// Error is the failure's class (timeout, throttled, access-denied,
	// unreachable, error), never its text: an endpoint that anyone who can
	// reach the port may read must not show account ids, ARNs or table names.
	Error string `json:"error,omitempty"`
}

// Report is the result of running every check.
type Report struct {
	Status     string               `json:"status"`
	Timestamp  time.Time            `json:"timestamp"`
	Components map[string]Component `json:"components"`
}

// Checker runs named checks concurrently, each under a timeout.
type Checker struct {
	checks  map[string]Check
	timeout time.Duration
	// SlowAfter marks a connected component slow: the overall status is then degraded.
	slowAfter time.Duration
}

// NewChecker returns a Checker; timeout bounds each check (default 2s).
func NewChecker(timeout time.Duration, checks map[string]Check) *Checker {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Checker{checks: checks, timeout: timeout, slowAfter: timeout / 2}
}

// Run runs every check. All connected and quick → healthy; some failing or slow →
// degraded; all failing → unhealthy.
func (c *Checker) Run(ctx context.Context) Report {
	r := Report{Timestamp: time.Now().UTC(), Components: make(map[string]Component, len(c.checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range c.checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			start := time.Now()
			err := check(cctx)
			comp := Component{Status: Connected, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				comp.Status, comp.Error = Disconnected, awserr.Class(err)
			}
			mu.Lock()
			r.Components[name] = comp
			mu.Unlock()
		})
	}
	wg.Wait()
	failing, slow := 0, 0
	for _, comp := range r.Components {
		if comp.Status != Connected {
			failing++
		} else if time.Duration(comp.LatencyMS*float64(time.Millisecond)) > c.slowAfter {
			slow++
		}
	}
	switch {
	case len(c.checks) > 0 && failing == len(c.checks):
		r.Status = Unhealthy
	case failing > 0 || slow > 0:
		r.Status = Degraded
	default:
		r.Status = Healthy
	}
	return r
}

// Names lists the checks, sorted.
func (c *Checker) Names() []string {
	names := make([]string, 0, len(c.checks))
	for n := range c.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DynamoDB checks that the table answers.
func DynamoDB(db *dynamodb.Client, table string) Check {
	return func(ctx context.Context) error {
		if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err != nil {
			return fmt.Errorf("describe table %s: %w", table, err)
		}
		return nil
	}
}

// SQS checks that the queue answers.
func SQS(q *sqs.Client, queueURL string) Check {
	return func(ctx context.Context) error {
		_, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			return fmt.Errorf("queue attributes: %w", err)
		}
		return nil
	}
}
