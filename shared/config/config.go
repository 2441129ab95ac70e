// Package config loads typed service configuration from environment variables.
//
// Every service embeds Common and adds its own fields. Variables are parsed with
// caarlos0/env, then validated; errors name the variable. AWS settings are not here:
// the SDK reads its own variables (AWS_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL_DYNAMODB, the credential chain), so one binary runs on ECS,
// against LocalStack and against local emulators without a code path of its own.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/logging"
)

// Common holds the settings both services share.
type Common struct {
	LogLevel  string `env:"WAHOOK_LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"WAHOOK_LOG_FORMAT" envDefault:"json"`

	LedgerTable   string `env:"WAHOOK_LEDGER_TABLE" envDefault:"wahook-ledger"`
	MessagesTable string `env:"WAHOOK_MESSAGES_TABLE" envDefault:"wahook-messages"`
	// QueueURL wins over QueueName; with only a name the URL is resolved with GetQueueUrl.
	QueueURL  string `env:"WAHOOK_QUEUE_URL"`
	QueueName string `env:"WAHOOK_QUEUE_NAME" envDefault:"wahook-events"`
	// DLQName is used by auto-provision; at run time the DLQ is found through the
	// queue's redrive policy.
	DLQName string `env:"WAHOOK_DLQ_NAME"`

	// AutoProvision creates missing tables and queues at start (local stacks, tests).
	AutoProvision bool `env:"WAHOOK_AUTO_PROVISION" envDefault:"false"`
	// VisibilityTimeout is the queue's default visibility, set at provision time;
	// the worker's heartbeat runs at a third of it.
	VisibilityTimeout time.Duration `env:"WAHOOK_VISIBILITY_TIMEOUT" envDefault:"20s"`
	// MaxReceiveCount is the redrive policy's limit before a message goes to the DLQ.
	MaxReceiveCount int `env:"WAHOOK_MAX_RECEIVE_COUNT" envDefault:"10"`
	// ItemTTL is how long ledger items live after their last write: at least
	// max(Meta's 7-day retries, queue + DLQ retention), checked at start against
	// the queues (ledger.CheckTTL). The default is ledger.DefaultTTL.
	ItemTTL time.Duration `env:"WAHOOK_ITEM_TTL" envDefault:"672h"`
	// BackendTimeout bounds one DynamoDB or SQS call (the SDK's retries included).
	BackendTimeout time.Duration `env:"WAHOOK_BACKEND_TIMEOUT" envDefault:"5s"`
	// Pprof serves Go's runtime profiles under /debug/pprof/ on the service's
	// own HTTP port (benchmarks, investigations; off in production).
	Pprof bool `env:"WAHOOK_PPROF" envDefault:"false"`
	// QueueStatsInterval is how often the queue's and the DLQ's depths are
	// read for /metrics (GetQueueAttributes); 0 turns it off.
	QueueStatsInterval time.Duration `env:"WAHOOK_QUEUE_STATS_INTERVAL" envDefault:"15s"`
}

// DeadLetterName is the DLQ name auto-provision uses.
func (c Common) DeadLetterName() string {
	if c.DLQName != "" {
		return c.DLQName
	}
	if name, ok := strings.CutSuffix(c.QueueName, ".fifo"); ok {
		return name + "-dlq.fifo"
	}
	return c.QueueName + "-dlq"
}

// Validate checks the shared settings.
func (c Common) Validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("WAHOOK_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("WAHOOK_LOG_FORMAT: %q is not one of json, console", c.LogFormat))
	}
	if c.LedgerTable == "" {
		errs = append(errs, errors.New("WAHOOK_LEDGER_TABLE: must not be empty"))
	}
	if c.QueueURL == "" && c.QueueName == "" {
		errs = append(errs, errors.New("WAHOOK_QUEUE_URL or WAHOOK_QUEUE_NAME: one is required"))
	}
	if c.VisibilityTimeout < time.Second || c.VisibilityTimeout > 12*time.Hour {
		errs = append(errs, fmt.Errorf("WAHOOK_VISIBILITY_TIMEOUT: %s is outside SQS's 1s..12h", c.VisibilityTimeout))
	}
	if c.VisibilityTimeout%time.Second != 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_VISIBILITY_TIMEOUT: %s is not whole seconds", c.VisibilityTimeout))
	}
	if c.MaxReceiveCount < 1 || c.MaxReceiveCount > 1000 {
		errs = append(errs, fmt.Errorf("WAHOOK_MAX_RECEIVE_COUNT: %d is outside 1..1000", c.MaxReceiveCount))
	}
	if c.ItemTTL < 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("WAHOOK_ITEM_TTL: %s is shorter than Meta's 7-day retry window", c.ItemTTL))
	}
	if c.BackendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WAHOOK_BACKEND_TIMEOUT: %s must be positive", c.BackendTimeout))
	}
	if c.QueueStatsInterval < 0 || (c.QueueStatsInterval > 0 && c.QueueStatsInterval < time.Second) {
		errs = append(errs, fmt.Errorf("WAHOOK_QUEUE_STATS_INTERVAL: %s must be 0s (off) or at least 1s", c.QueueStatsInterval))
	}
	return errors.Join(errs...)
}

// Validator is implemented by configs that check themselves after parsing.
type Validator interface {
	Validate() error
}

// Load parses T from the environment and validates it.
func Load[T any]() (T, error) {
	return LoadFrom[T](nil)
}

// LoadFrom is Load with an explicit environment (nil means the process's).
func LoadFrom[T any](environ map[string]string) (T, error) {
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	cfg, err := env.ParseAsWithOptions[T](opts)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", nameVariables(reflect.TypeFor[T](), err))
	}
	if v, ok := any(cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
	}
	return cfg, nil
}

// nameVariables rewrites env's parse errors, which name the Go field, to name
// the environment variable a user has to fix.
func nameVariables(t reflect.Type, err error) error {
	vars := map[string]string{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
				vars[f.Name] = name
			} else if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	if t.Kind() == reflect.Struct {
		walk(t)
	}
	errs := []error{err}
	var agg env.AggregateError
	if errors.As(err, &agg) {
		errs = agg.Errors
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var pe env.ParseError
		if errors.As(e, &pe) && vars[pe.Name] != "" {
			out = append(out, fmt.Errorf("%s: %w", vars[pe.Name], pe.Err))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Masked is what a secret looks like in logs.
const Masked = "[masked]"

// Fields renders cfg as log fields keyed by environment variable. Fields tagged
// `secret:"true"` show only whether they are set; string fields tagged
// `secret:"url"` show the URL with its userinfo and query masked.
func Fields(cfg any) []zap.Field {
	var fields []zap.Field
	collect(reflect.ValueOf(cfg), &fields)
	return fields
}

func collect(v reflect.Value, fields *[]zap.Field) {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			if fv.Kind() == reflect.Struct {
				collect(fv, fields)
			}
			continue
		}
		if f.Tag.Get("secret") == "url" && fv.Kind() == reflect.String {
			*fields = append(*fields, zap.String(name, logging.RedactURLString(fv.String())))
			continue
		}
		if f.Tag.Get("secret") == "true" {
			shown := ""
			if !fv.IsZero() {
				shown = Masked
			}
			*fields = append(*fields, zap.String(name, shown))
			continue
		}
		*fields = append(*fields, zap.Any(name, fv.Interface()))
	}
}

// Variables lists the environment variables a config type reads (its `env`
// tags, embedded structs included), sorted.
func Variables[T any]() []string {
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
				names = append(names, name)
			} else if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	if t := reflect.TypeFor[T](); t.Kind() == reflect.Struct {
		walk(t)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
