// Package config is the worker binary's configuration: the shared settings
// plus the worker's own, from WAHOOK_* environment variables.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	shared "github.com/wahook/wahook/shared/config"
)

// Handler names accepted in WAHOOK_HANDLERS.
const (
	HandlerStore   = "store"
	HandlerForward = "forward"
	HandlerAudit   = "audit"
)

// Config is the worker's configuration.
type Config struct {
	shared.Common

	// Processors is how many processors the process runs.
	Processors int `env:"WAHOOK_PROCESSORS" envDefault:"4"`
	// DynamoDBConcurrency bounds the DynamoDB calls the process has in flight
	// at once, across all its processors (claims, handler writes, results,
	// heartbeats); a call beyond it waits, in order, within its own timeout.
	// 0 (the default): unbounded. A bound below what the processors have in
	// flight (up to ten events each) leaves more of a shared backend to
	// ingest, but makes claims wait behind slow calls: when the backend is
	// slow rather than busy, a message can then wait out its visibility before
	// its heartbeats start (README's benchmark, "Calls in flight").
	DynamoDBConcurrency int `env:"WAHOOK_DYNAMODB_CONCURRENCY" envDefault:"0"`
	// HandlerTimeout bounds one handler run.
	HandlerTimeout time.Duration `env:"WAHOOK_HANDLER_TIMEOUT" envDefault:"60s"`
	// LeaseDuration is the ledger lease of a claim; 0 means the visibility timeout.
	LeaseDuration time.Duration `env:"WAHOOK_LEASE_DURATION" envDefault:"0s"`
	// Heartbeat renews lease and visibility while a handler runs.
	Heartbeat bool `env:"WAHOOK_HEARTBEAT" envDefault:"true"`
	// MaxAttempts is how many handler runs may end in a retryable error before
	// the event fails for good; only handler errors count.
	MaxAttempts int `env:"WAHOOK_MAX_ATTEMPTS" envDefault:"5"`
	// MaxInterruptions bounds the claims that end without any result (crash,
	// lapsed lease), so a crash loop still ends in the dead-letter queue.
	MaxInterruptions int `env:"WAHOOK_MAX_INTERRUPTIONS" envDefault:"10"`
	// ShutdownTimeout is how long in-flight handlers may finish after SIGTERM
	// (under ECS's 30 s stop timeout).
	ShutdownTimeout time.Duration `env:"WAHOOK_SHUTDOWN_TIMEOUT" envDefault:"25s"`
	// ReceiveWait is the long-poll wait (0s..20s); the processors cap it at
	// ShutdownTimeout (polls in flight at SIGTERM run to their end).
	ReceiveWait time.Duration `env:"WAHOOK_RECEIVE_WAIT" envDefault:"20s"`
	// RetryBase and RetryMax shape a retryable event's backoff.
	RetryBase time.Duration `env:"WAHOOK_RETRY_BASE" envDefault:"1s"`
	RetryMax  time.Duration `env:"WAHOOK_RETRY_MAX" envDefault:"5m"`
	// BreakerThreshold is how many consecutive transient ledger failures stop
	// receiving.
	BreakerThreshold int `env:"WAHOOK_BREAKER_THRESHOLD" envDefault:"5"`
	// HealthAddr is the health and metrics server's address.
	HealthAddr string `env:"WAHOOK_HEALTH_ADDR" envDefault:":8081"`

	// Handlers run in order for every event.
	Handlers []string `env:"WAHOOK_HANDLERS" envDefault:"store" envSeparator:","`
	// ForwardURL is where the forward handler POSTs events. Logged with its
	// userinfo and query masked: tokens live there.
	ForwardURL string `env:"WAHOOK_FORWARD_URL" secret:"url"`
	// ForwardSecret signs forwarded bodies (HMAC-SHA256).
	ForwardSecret  string        `env:"WAHOOK_FORWARD_SECRET" secret:"true"`
	ForwardTimeout time.Duration `env:"WAHOOK_FORWARD_TIMEOUT" envDefault:"10s"`
	// AuditTable and AuditDelay configure the audit handler (tests only).
	AuditTable string        `env:"WAHOOK_AUDIT_TABLE"`
	AuditDelay time.Duration `env:"WAHOOK_AUDIT_DELAY" envDefault:"0s"`
	// AuditSequenceTable, AuditFailRate and AuditFailSeed: the audit
	// handler's per-conversation completion record and its injected failures
	// of first attempts (tests only; see handlers/audit).
	AuditSequenceTable string  `env:"WAHOOK_AUDIT_SEQUENCE_TABLE"`
	AuditFailRate      float64 `env:"WAHOOK_AUDIT_FAIL_RATE" envDefault:"0"`
	AuditFailSeed      uint64  `env:"WAHOOK_AUDIT_FAIL_SEED" envDefault:"0"`
	// AuditStuck makes every event's first attempt sleep this long ignoring
	// its context: a plug-in that ignores its deadline (tests only).
	AuditStuck time.Duration `env:"WAHOOK_AUDIT_STUCK" envDefault:"0s"`
}

// HandlerNames are the configured handlers, trimmed, empty entries dropped.
func (c Config) HandlerNames() []string {
	var names []string
	for _, n := range c.Handlers {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// Validate checks the settings; errors name the variable.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.Processors < 1 || c.Processors > 256 {
		errs = append(errs, fmt.Errorf("WAHOOK_PROCESSORS: %d is outside 1..256", c.Processors))
	}
	if c.DynamoDBConcurrency < 0 || c.DynamoDBConcurrency > 10000 {
		errs = append(errs, fmt.Errorf("WAHOOK_DYNAMODB_CONCURRENCY: %d is outside 0..10000 (0: unbounded)", c.DynamoDBConcurrency))
	}
	if c.AuditFailRate < 0 || c.AuditFailRate > 1 {
		errs = append(errs, fmt.Errorf("WAHOOK_AUDIT_FAIL_RATE: %v is outside 0..1", c.AuditFailRate))
	}
	if c.HandlerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_HANDLER_TIMEOUT: %s must be positive", c.HandlerTimeout))
	}
	if c.LeaseDuration < 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_LEASE_DURATION: %s must not be negative", c.LeaseDuration))
	} else if c.LeaseDuration > 0 && c.LeaseDuration < time.Second {
		errs = append(errs, fmt.Errorf("WAHOOK_LEASE_DURATION: %s is under 1s", c.LeaseDuration))
	} else if c.LeaseDuration > 0 && c.LeaseDuration < c.VisibilityTimeout {
		// Heartbeats come every third of the visibility timeout and extend
		// the lease by its duration: a shorter lease lapses between them.
		errs = append(errs, fmt.Errorf("WAHOOK_LEASE_DURATION: %s is under WAHOOK_VISIBILITY_TIMEOUT %s",
			c.LeaseDuration, c.VisibilityTimeout))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("WAHOOK_MAX_ATTEMPTS: %d must be at least 1", c.MaxAttempts))
	} else if c.MaxReceiveCount < c.MaxAttempts+2 {
		// Receives that add no attempt (a lease held elsewhere, the breaker,
		// a shutdown) must not let SQS redrive before the worker's own Fail.
		errs = append(errs, fmt.Errorf("WAHOOK_MAX_RECEIVE_COUNT: %d is under WAHOOK_MAX_ATTEMPTS %d + 2",
			c.MaxReceiveCount, c.MaxAttempts))
	}
	if c.MaxInterruptions < 1 {
		errs = append(errs, fmt.Errorf("WAHOOK_MAX_INTERRUPTIONS: %d must be at least 1", c.MaxInterruptions))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_SHUTDOWN_TIMEOUT: %s must be positive", c.ShutdownTimeout))
	}
	if c.ReceiveWait < 0 || c.ReceiveWait > 20*time.Second {
		errs = append(errs, fmt.Errorf("WAHOOK_RECEIVE_WAIT: %s is outside 0s..20s", c.ReceiveWait))
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("WAHOOK_RETRY_BASE, WAHOOK_RETRY_MAX: want 0 < base (%s) <= max (%s)", c.RetryBase, c.RetryMax))
	} else if c.RetryMax > time.Hour {
		// Retries hide the message with its visibility timeout, which SQS
		// caps at 12 hours from the receive.
		errs = append(errs, fmt.Errorf("WAHOOK_RETRY_MAX: %s is over 1h", c.RetryMax))
	}
	if c.BreakerThreshold < 1 {
		errs = append(errs, fmt.Errorf("WAHOOK_BREAKER_THRESHOLD: %d must be at least 1", c.BreakerThreshold))
	}
	if c.HealthAddr == "" {
		errs = append(errs, errors.New("WAHOOK_HEALTH_ADDR: must not be empty"))
	}
	names := c.HandlerNames()
	if len(names) == 0 {
		errs = append(errs, errors.New("WAHOOK_HANDLERS: no handler configured"))
	}
	for i, n := range names {
		switch n {
		case HandlerStore:
			if c.MessagesTable == "" {
				errs = append(errs, errors.New("WAHOOK_MESSAGES_TABLE: required by the store handler"))
			}
		case HandlerForward:
			if u, err := url.Parse(c.ForwardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, errors.New("WAHOOK_FORWARD_URL: the forward handler needs an absolute http(s) URL"))
			}
			if c.ForwardSecret == "" {
				errs = append(errs, errors.New("WAHOOK_FORWARD_SECRET: required by the forward handler"))
			}
			if c.ForwardTimeout <= 0 {
				errs = append(errs, fmt.Errorf("WAHOOK_FORWARD_TIMEOUT: %s must be positive", c.ForwardTimeout))
			}
		case HandlerAudit:
			if c.AuditTable == "" {
				errs = append(errs, errors.New("WAHOOK_AUDIT_TABLE: required by the audit handler"))
			}
			if c.AuditDelay < 0 {
				errs = append(errs, fmt.Errorf("WAHOOK_AUDIT_DELAY: %s must not be negative", c.AuditDelay))
			}
			if c.AuditStuck < 0 {
				errs = append(errs, fmt.Errorf("WAHOOK_AUDIT_STUCK: %s must not be negative", c.AuditStuck))
			}
		default:
			errs = append(errs, fmt.Errorf("WAHOOK_HANDLERS: unknown handler %q (want store, forward, audit)", n))
		}
		if slices.Index(names, n) != i {
			errs = append(errs, fmt.Errorf("WAHOOK_HANDLERS: %q listed twice", n))
		}
	}
	return errors.Join(errs...)
}
