// Package logging builds the zap loggers the services use. There is no global
// logger: each component receives one and adds its own fields.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Field names shared by every line that concerns one event or processor.
const (
	FieldKey       = "event_key"
	FieldProcessor = "processor_id"
	FieldAttempt   = "attempt"
	FieldRequestID = "request_id"
	FieldMessageID = "sqs_message_id"
)

// Key is the event key field.
func Key(k string) zap.Field { return zap.String(FieldKey, k) }

// Processor is the processor id field.
func Processor(id string) zap.Field { return zap.String(FieldProcessor, id) }

// Attempt is the attempt (fencing token) field.
func Attempt(n int) zap.Field { return zap.Int(FieldAttempt, n) }

// RequestID is the HTTP request id field.
func RequestID(id string) zap.Field { return zap.String(FieldRequestID, id) }

// MessageID is the SQS message id field.
func MessageID(id string) zap.Field { return zap.String(FieldMessageID, id) }

// New builds a logger. format is "json" (production) or "console" (humans);
// level is debug, info, warn or error.
func New(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	var cfg zap.Config
	switch format {
	case "json", "":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
		// Sampling would drop per-event lines, which are the audit trail.
		cfg.Sampling = nil
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}
