// Package envelope is the versioned body of a queue message: one event with
// what a processor needs to handle it, and the event's raw JSON as Meta sent it.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wahook/wahook/shared/webhook"
)

// Version is the envelope version this code writes and reads.
const Version = 1

// Message attribute names set on every queue message.
const (
	AttrKey  = "key"
	AttrKind = "kind"
)

// ErrInvalid is returned for a body that is not a usable envelope.
var ErrInvalid = errors.New("envelope: invalid")

// Envelope is the queue message body.
type Envelope struct {
	V                  int              `json:"v"`
	Key                string           `json:"key"`
	Kind               webhook.Kind     `json:"kind"`
	ReceivedAt         time.Time        `json:"received_at"`
	WAMID              string           `json:"wamid"`
	Status             string           `json:"status,omitempty"`
	Customer           string           `json:"customer,omitempty"`
	Timestamp          string           `json:"timestamp,omitempty"`
	WABAID             string           `json:"waba_id,omitempty"`
	PhoneNumberID      string           `json:"phone_number_id,omitempty"`
	DisplayPhoneNumber string           `json:"display_phone_number,omitempty"`
	Contact            *webhook.Contact `json:"contact,omitempty"`
	Payload            json.RawMessage  `json:"payload"`
}

// FromEvent wraps an event received at receivedAt.
func FromEvent(e webhook.Event, receivedAt time.Time) Envelope {
	return Envelope{
		V:                  Version,
		Key:                e.Key,
		Kind:               e.Kind,
		ReceivedAt:         receivedAt.UTC(),
		WAMID:              e.WAMID,
		Status:             e.Status,
		Customer:           e.Customer,
		Timestamp:          e.Timestamp,
		WABAID:             e.WABAID,
		PhoneNumberID:      e.PhoneNumberID,
		DisplayPhoneNumber: e.DisplayPhoneNumber,
		Contact:            e.Contact,
		Payload:            e.Raw,
	}
}

// Encode returns the JSON body.
func (e Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.Key, err)
	}
	return b, nil
}

// Decode parses and checks a body. ErrInvalid for anything a processor cannot handle.
func Decode(body []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case e.V != Version:
		return Envelope{}, fmt.Errorf("%w: version %d, want %d", ErrInvalid, e.V, Version)
	case e.Key == "":
		return Envelope{}, fmt.Errorf("%w: no key", ErrInvalid)
	case e.Kind != webhook.KindMessage && e.Kind != webhook.KindStatus:
		return Envelope{}, fmt.Errorf("%w: kind %q", ErrInvalid, e.Kind)
	case e.WAMID == "":
		return Envelope{}, fmt.Errorf("%w: no wamid", ErrInvalid)
	case e.Kind == webhook.KindStatus && e.Status == "":
		return Envelope{}, fmt.Errorf("%w: status without status", ErrInvalid)
	}
	want := webhook.MessageKey(e.WAMID)
	if e.Kind == webhook.KindStatus {
		want = webhook.StatusKey(e.WAMID, e.Status)
	}
	if e.Key != want {
		return Envelope{}, fmt.Errorf("%w: key %q does not match %q", ErrInvalid, e.Key, want)
	}
	return e, nil
}

// GroupID is the FIFO message group: one conversation (the business number and
// the customer), so that a FIFO queue keeps per-conversation order.
func (e Envelope) GroupID() string {
	return e.PhoneNumberID + ":" + e.Customer
}

// DeduplicationID is the FIFO deduplication id: a hash of the key (SQS allows at
// most 128 characters).
func (e Envelope) DeduplicationID() string {
	sum := sha256.Sum256([]byte(e.Key))
	return hex.EncodeToString(sum[:])
}
