package envelope_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/webhook"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b, err := webhook.Parse([]byte(`{"entry":[{"id":"W","changes":[{"value":{
		"metadata":{"phone_number_id":"PN","display_phone_number":"+1 555"},
		"contacts":[{"wa_id":"49","profile":{"name":"Zoë"}}],
		"messages":[{"id":"wamid.1","from":"49","timestamp":"1700000000","type":"text","text":{"body":"é 👋 @x"}}],
		"statuses":[{"id":"wamid.2","status":"read","timestamp":"1700000001","recipient_id":"49"}]}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, ev := range b.Events {
		env := envelope.FromEvent(ev, at)
		body, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := envelope.Decode(body)
		if err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if !got.ReceivedAt.Equal(at) {
			t.Fatalf("received_at %v, want %v", got.ReceivedAt, at)
		}
		got.ReceivedAt, env.ReceivedAt = time.Time{}, time.Time{}
		if !bytes.Equal(got.Payload, ev.Raw) {
			t.Fatalf("payload %s, want %s", got.Payload, ev.Raw)
		}
		if !reflect.DeepEqual(got, env) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, env)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":       `{`,
		"version":        `{"v":2,"key":"msg#a","kind":"message","wamid":"a","payload":{}}`,
		"no key":         `{"v":1,"kind":"message","wamid":"a","payload":{}}`,
		"kind":           `{"v":1,"key":"msg#a","kind":"other","wamid":"a","payload":{}}`,
		"key mismatch":   `{"v":1,"key":"msg#b","kind":"message","wamid":"a","payload":{}}`,
		"status missing": `{"v":1,"key":"status#a#","kind":"status","wamid":"a","payload":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := envelope.Decode([]byte(body)); !errors.Is(err, envelope.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestFIFOIdentifiers(t *testing.T) {
	t.Parallel()
	env := envelope.Envelope{Key: "msg#" + string(bytes.Repeat([]byte("x"), 300)), PhoneNumberID: "PN", Customer: "49"}
	if got := env.GroupID(); got != "PN:49" {
		t.Fatalf("group = %q", got)
	}
	if id := env.DeduplicationID(); len(id) != 64 || id != (envelope.Envelope{Key: env.Key}).DeduplicationID() {
		t.Fatalf("dedup id %q: want 64 hex chars, stable", id)
	}
}
