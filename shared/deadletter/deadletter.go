// Package deadletter is the contract of a wahook dead letter: the message
// attributes the worker and ingest set on every copy they send to the
// dead-letter queue, which the wahook CLI lists and filters on and the worker
// reads when an operator moves a copy back to the source queue (SQS's own
// redrive, StartMessageMoveTask, or `wahook dlq replay`).
//
// A copy's body is what could not be processed: the envelope as it was queued
// (reasons failed, ledger-expired), the undecodable body (poison), or the raw
// event as Meta sent it (rejected). A message in the DLQ without AttrReason was
// moved there by SQS itself after maxReceiveCount receives.
package deadletter

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
)

// Attribute names of a dead-lettered copy. Key and kind use the envelope's own
// attribute names, so a copy moved back looks like any queue message.
const (
	AttrReason    = "wahook_reason"         // one of the Reason* values
	AttrError     = "wahook_error"          // what failed, in words (bounded)
	AttrAttempt   = "wahook_attempt"        // Number: the attempt that failed (0: none)
	AttrProcessor = "wahook_processor_id"   // the processor (or ingest) that dead-lettered it
	AttrMessageID = "wahook_sqs_message_id" // the source message's id
	AttrKey       = envelope.AttrKey        // the event key, when known
	AttrKind      = envelope.AttrKind       // message or status, when known
	// AttrTruncated (Number) is set when the body had to be cut to fit the
	// DLQ's MaximumMessageSize: the original body's size in bytes.
	AttrTruncated = "wahook_truncated"
)

// Reasons, the value of AttrReason.
const (
	// ReasonFailed: the handler failed for good (permanent error, attempts
	// exhausted). The ledger item is `failed`; moved back, the copy reopens it.
	ReasonFailed = "failed"
	// ReasonPoison: the body is not an envelope; no retry makes it one.
	ReasonPoison = "poison"
	// ReasonExpired: no ledger item for an envelope older than the item TTL;
	// the event may have been done already, so it was not run.
	ReasonExpired = "ledger-expired"
	// ReasonRejected: ingest accepted the event but could not enqueue it (no
	// id, larger than the queue's MaximumMessageSize); the body is the raw
	// event and the ledger has a `rejected` item.
	ReasonRejected = "rejected"
	// ReasonSQSRedrive is what the CLI shows for a message without AttrReason:
	// SQS moved it after maxReceiveCount receives.
	ReasonSQSRedrive = "sqs-redrive"
)

// Info is what a copy's attributes say.
type Info struct {
	Reason    string
	Error     string
	Attempt   int
	Processor string
	MessageID string
	Key       string
	Kind      string
}

// Parse reads a received message's attributes (received with
// MessageAttributeNames "All").
func Parse(attrs map[string]sqstypes.MessageAttributeValue) Info {
	get := func(name string) string { return aws.ToString(attrs[name].StringValue) }
	n, _ := strconv.Atoi(get(AttrAttempt))
	return Info{
		Reason: get(AttrReason), Error: get(AttrError), Attempt: n, Processor: get(AttrProcessor),
		MessageID: get(AttrMessageID), Key: get(AttrKey), Kind: get(AttrKind),
	}
}

// DisplayReason is Reason, or ReasonSQSRedrive for a copy SQS moved itself.
func (i Info) DisplayReason() string {
	if i.Reason == "" {
		return ReasonSQSRedrive
	}
	return i.Reason
}

// Fence is the ledger done_by of the failure this copy was made for (empty
// unless Reason is failed): what Reopen is fenced by.
func (i Info) Fence() string {
	if i.Reason != ReasonFailed || i.Processor == "" || i.Attempt <= 0 {
		return ""
	}
	return ledger.DoneBy(i.Processor, i.Attempt)
}

// Attributes builds a copy's attributes from info (empty fields are left out).
func Attributes(i Info) map[string]sqstypes.MessageAttributeValue {
	out := map[string]sqstypes.MessageAttributeValue{AttrAttempt: Number(i.Attempt)}
	// SQS refuses empty attribute values: empty fields are left out.
	for name, v := range map[string]string{AttrReason: i.Reason, AttrError: i.Error, AttrProcessor: i.Processor, AttrMessageID: i.MessageID, AttrKey: i.Key, AttrKind: i.Kind} {
		if v != "" {
			out[name] = String(v)
		}
	}
	return out
}

// IsOurs reports whether name is one of the attributes this package sets
// beside the envelope's own (key, kind): a replay strips them.
func IsOurs(name string) bool {
	switch name {
	case AttrReason, AttrError, AttrAttempt, AttrProcessor, AttrMessageID, AttrTruncated:
		return true
	}
	return false
}

// Number is a Number message attribute.
func Number(n int) sqstypes.MessageAttributeValue {
	return sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(n))}
}

// String is a String message attribute.
func String(s string) sqstypes.MessageAttributeValue {
	return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

// Age is how long ago a message was first sent (its SentTimestamp system
// attribute; for a copy, when it was dead-lettered). Zero when unknown.
func Age(m sqstypes.Message, now time.Time) time.Duration {
	ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return now.Sub(time.UnixMilli(ms))
}
