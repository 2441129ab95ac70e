// Package webhook parses the WhatsApp Cloud API's webhook payload into events,
// one per inbound message and one per delivery status, each keeping its raw JSON.
//
// The parser is lenient on shape: `object`, `field` and `metadata` may be missing
// (the seed's payloads have none). It is strict on identity: an event without an
// id cannot be deduplicated, so it is rejected and counted, never queued.
package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is what an event is.
type Kind string

// Event kinds.
const (
	KindMessage Kind = "message"
	KindStatus  Kind = "status"
)

// ErrMalformed is returned for a body that is not a JSON webhook.
var ErrMalformed = errors.New("webhook: malformed payload")

// Contact is the customer a message came from, as Meta describes them.
type Contact struct {
	WaID string `json:"wa_id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Event is one unit of work: a message or a status.
type Event struct {
	Key  string
	Kind Kind
	// WAMID is the WhatsApp message id (of the inbound message, or of the
	// outbound message a status is about).
	WAMID string
	// Status is the delivery status (sent, delivered, read, played, failed).
	Status string
	// Customer is the customer's wa_id: the sender of a message, the recipient of
	// a status.
	Customer string
	// Timestamp is Meta's timestamp, kept as sent (epoch seconds as a string).
	Timestamp          string
	WABAID             string
	PhoneNumberID      string
	DisplayPhoneNumber string
	Contact            *Contact
	// Raw is the message or status object exactly as Meta sent it.
	Raw json.RawMessage
}

// Rejected is an object that could not become an event.
type Rejected struct {
	Kind   Kind
	Reason string
	Raw    json.RawMessage
}

// Batch is everything one webhook body carried.
type Batch struct {
	Object   string
	Events   []Event
	Rejected []Rejected
	// Errors are the `value.errors[]` objects Meta reports (logged and counted).
	Errors []json.RawMessage
}

// MessageKey is the ledger key of an inbound message.
func MessageKey(wamid string) string { return "msg#" + wamid }

// StatusKey is the ledger key of a delivery status.
func StatusKey(wamid, status string) string { return "status#" + wamid + "#" + status }

type payload struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value value  `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type value struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []struct {
		WaID    string `json:"wa_id"`
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
	} `json:"contacts"`
	Messages []json.RawMessage `json:"messages"`
	Statuses []json.RawMessage `json:"statuses"`
	Errors   []json.RawMessage `json:"errors"`
}

type messageHead struct {
	ID        string `json:"id"`
	From      string `json:"from"`
	Timestamp string `json:"timestamp"`
}

type statusHead struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	RecipientID string `json:"recipient_id"`
	Timestamp   string `json:"timestamp"`
}

// Parse splits a webhook body into events. Events keep Meta's order; a key that
// appears twice in one body is kept once.
func Parse(body []byte) (*Batch, error) {
	var p payload
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	b := &Batch{Object: p.Object}
	seen := map[string]bool{}
	add := func(e Event) {
		if seen[e.Key] {
			return
		}
		seen[e.Key] = true
		b.Events = append(b.Events, e)
	}
	for _, entry := range p.Entry {
		for _, change := range entry.Changes {
			v := change.Value
			b.Errors = append(b.Errors, v.Errors...)
			base := Event{
				WABAID:             entry.ID,
				PhoneNumberID:      v.Metadata.PhoneNumberID,
				DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber,
			}
			for _, raw := range v.Messages {
				var m messageHead
				if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" {
					b.Rejected = append(b.Rejected, Rejected{Kind: KindMessage, Reason: reason(err, "message without id"), Raw: raw})
					continue
				}
				e := base
				e.Key, e.Kind, e.WAMID, e.Customer, e.Timestamp, e.Raw = MessageKey(m.ID), KindMessage, m.ID, m.From, m.Timestamp, raw
				e.Contact = contactFor(v, m.From)
				add(e)
			}
			for _, raw := range v.Statuses {
				var s statusHead
				if err := json.Unmarshal(raw, &s); err != nil || s.ID == "" || s.Status == "" {
					b.Rejected = append(b.Rejected, Rejected{Kind: KindStatus, Reason: reason(err, "status without id or status"), Raw: raw})
					continue
				}
				e := base
				e.Key, e.Kind, e.WAMID, e.Status, e.Customer, e.Timestamp, e.Raw = StatusKey(s.ID, s.Status), KindStatus, s.ID, s.Status, s.RecipientID, s.Timestamp, raw
				add(e)
			}
		}
	}
	return b, nil
}

func reason(err error, missing string) string {
	if err != nil {
		return "not an object: " + err.Error()
	}
	return missing
}

// contactFor finds the sender among the change's contacts; with one contact and
// no match (the seed's shape), that contact is the sender.
func contactFor(v value, from string) *Contact {
	for _, c := range v.Contacts {
		if c.WaID == from && from != "" {
			return &Contact{WaID: c.WaID, Name: c.Profile.Name}
		}
	}
	if len(v.Contacts) == 1 && (from == "" || v.Contacts[0].WaID == "") {
		c := v.Contacts[0]
		return &Contact{WaID: c.WaID, Name: c.Profile.Name}
	}
	return nil
}
