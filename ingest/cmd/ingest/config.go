package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/wahook/wahook/shared/config"
)

// Config is ingest's configuration, from the environment.
type Config struct {
	config.Common

	// HTTPAddr is where the HTTP server listens.
	HTTPAddr string `env:"WAHOOK_HTTP_ADDR" envDefault:":8080"`
	// AppSecret keys Meta's X-Hub-Signature-256 (the one-secret form). One of
	// AppSecret, AppSecrets and AppSecretsFile is required unless
	// InsecureSkipSignature is set; see credentials.go.
	AppSecret string `env:"WAHOOK_APP_SECRET" secret:"true"`
	// AppSecrets are several app secrets, comma-separated: a body signed with
	// any of them is accepted (rotation, or several Meta apps).
	AppSecrets string `env:"WAHOOK_APP_SECRETS" secret:"true"`
	// AppSecretsFile names a file holding the app secrets, one per line or
	// comma-separated (an ECS secret, a Kubernetes secret mount).
	AppSecretsFile string `env:"WAHOOK_APP_SECRETS_FILE"`
	// VerifyToken answers Meta's subscription handshake; none set refuses it.
	VerifyToken string `env:"WAHOOK_VERIFY_TOKEN" secret:"true"`
	// VerifyTokens and VerifyTokensFile are the several-token forms.
	VerifyTokens     string `env:"WAHOOK_VERIFY_TOKENS" secret:"true"`
	VerifyTokensFile string `env:"WAHOOK_VERIFY_TOKENS_FILE"`
	// InsecureSkipSignature accepts unsigned webhooks: local development only.
	InsecureSkipSignature bool `env:"WAHOOK_INSECURE_SKIP_SIGNATURE" envDefault:"false"`
	// BodyLimit is the largest webhook body, in bytes (Meta sends at most 3 MB).
	BodyLimit int64 `env:"WAHOOK_BODY_LIMIT" envDefault:"4194304"`
	// SendTimeout bounds one SQS SendMessageBatch call.
	SendTimeout time.Duration `env:"WAHOOK_SEND_TIMEOUT" envDefault:"5s"`
	// ResendWindow is the age after which an event left `received` by another
	// request is taken over and sent again. Longer than SendTimeout, so that a
	// live request is not overtaken while its send may still succeed.
	ResendWindow time.Duration `env:"WAHOOK_RESEND_WINDOW" envDefault:"10s"`
	// InFlightWait is how long a duplicate waits on a sibling request's events
	// without any of them getting queued or renewed before answering 503 (Meta
	// retries). A sibling that keeps queueing or renewing (every
	// ResendWindow/3) keeps the duplicate waiting, so it must be longer.
	InFlightWait time.Duration `env:"WAHOOK_INFLIGHT_WAIT" envDefault:"5s"`
	// AdmitConcurrency is the most ledger writes the process's webhooks run
	// at once, together, while admitting their events. Admission starts at 16
	// and adapts to how fast the ledger answers: it doubles while a round of
	// writes is answered within AdmitLatencyTarget on average, halves when a
	// round is slower or a write fails (see the pipeline's limit.go, and
	// README, Measured).
	AdmitConcurrency int `env:"WAHOOK_ADMIT_CONCURRENCY" envDefault:"64"`
	// AdmitLatencyTarget is the mean answer time of the admission writes
	// above which the process halves its admission concurrency. DynamoDB
	// answers a conditional write in milliseconds: a table that takes longer
	// is queueing or throttling, and more writes in flight only push its calls
	// toward their timeout.
	AdmitLatencyTarget time.Duration `env:"WAHOOK_ADMIT_LATENCY_TARGET" envDefault:"250ms"`
	// DynamoDBConcurrency bounds the DynamoDB calls the process has in flight
	// at once, across all its webhooks; a call beyond it waits, in order,
	// within its own timeout. 0 (the default): unbounded — README's benchmark
	// ("Calls in flight") found no gain from a bound on this 2-core box.
	DynamoDBConcurrency int `env:"WAHOOK_DYNAMODB_CONCURRENCY" envDefault:"0"`
	// SendConcurrency is how many SQS SendMessageBatch calls one webhook has
	// in flight (a FIFO queue sends one at a time, in order).
	SendConcurrency int `env:"WAHOOK_SEND_CONCURRENCY" envDefault:"4"`
	// ShutdownTimeout bounds the graceful shutdown: in-flight webhooks finish
	// within it. Under ECS's 30s stop timeout.
	ShutdownTimeout time.Duration `env:"WAHOOK_SHUTDOWN_TIMEOUT" envDefault:"20s"`
}

// Validate checks the settings; errors name the variable.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("WAHOOK_HTTP_ADDR: must not be empty"))
	}
	errs = append(errs, c.appSecrets().check(!c.InsecureSkipSignature), c.verifyTokens().check(false))
	if c.BodyLimit < 1024 {
		errs = append(errs, fmt.Errorf("WAHOOK_BODY_LIMIT: %d bytes is less than 1024", c.BodyLimit))
	}
	if c.SendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_SEND_TIMEOUT: %s must be positive", c.SendTimeout))
	}
	if c.ResendWindow <= c.SendTimeout {
		errs = append(errs, fmt.Errorf("WAHOOK_RESEND_WINDOW: %s must be longer than WAHOOK_SEND_TIMEOUT (%s)",
			c.ResendWindow, c.SendTimeout))
	}
	if c.InFlightWait <= c.ResendWindow/3 {
		errs = append(errs, fmt.Errorf("WAHOOK_INFLIGHT_WAIT: %s must be longer than a third of WAHOOK_RESEND_WINDOW (%s), "+
			"how often a live request renews its events", c.InFlightWait, c.ResendWindow/3))
	}
	if c.AdmitConcurrency < 1 || c.AdmitConcurrency > 1000 {
		errs = append(errs, fmt.Errorf("WAHOOK_ADMIT_CONCURRENCY: %d is outside 1..1000", c.AdmitConcurrency))
	}
	if c.AdmitLatencyTarget <= 0 || c.AdmitLatencyTarget >= c.BackendTimeout {
		errs = append(errs, fmt.Errorf("WAHOOK_ADMIT_LATENCY_TARGET: %s must be positive and shorter than WAHOOK_BACKEND_TIMEOUT (%s)",
			c.AdmitLatencyTarget, c.BackendTimeout))
	}
	if c.DynamoDBConcurrency < 0 || c.DynamoDBConcurrency > 10000 {
		errs = append(errs, fmt.Errorf("WAHOOK_DYNAMODB_CONCURRENCY: %d is outside 0..10000 (0: unbounded)", c.DynamoDBConcurrency))
	}
	if c.SendConcurrency < 1 || c.SendConcurrency > 100 {
		errs = append(errs, fmt.Errorf("WAHOOK_SEND_CONCURRENCY: %d is outside 1..100", c.SendConcurrency))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_SHUTDOWN_TIMEOUT: %s must be positive", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
