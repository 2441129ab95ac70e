package webhook_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/shared/webhook/webhooktest"
)

// seedScenario1 is the seed guide's payload: no object, field or metadata.
const seedScenario1 = webhooktest.SeedScenario1

const metaBatch = `{
  "object": "whatsapp_business_account",
  "entry": [{
    "id": "WABA1",
    "changes": [{
      "field": "messages",
      "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "4915112345"}, {"profile": {"name": "Bo"}, "wa_id": "4915199999"}],
        "messages": [
          {"from": "4915112345", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "hi 👋 @ana"}},
          {"from": "4915199999", "id": "wamid.B", "timestamp": "1700000001", "type": "image", "image": {"id": "media-1", "mime_type": "image/jpeg"}},
          {"from": "4915112345", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "hi 👋 @ana"}},
          {"from": "4915112345", "timestamp": "1700000002", "type": "text"}
        ],
        "statuses": [
          {"id": "wamid.OUT", "status": "delivered", "timestamp": "1700000003", "recipient_id": "4915112345"},
          {"id": "wamid.OUT", "status": "read", "timestamp": "1700000004", "recipient_id": "4915112345"},
          {"id": "wamid.OUT", "timestamp": "1700000005"}
        ],
        "errors": [{"code": 131047, "title": "Re-engagement message"}]
      }
    }]
  }]
}`

func TestParseSeedPayload(t *testing.T) {
	t.Parallel()
	b, err := webhook.Parse([]byte(seedScenario1))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || len(b.Rejected) != 0 {
		t.Fatalf("events %d rejected %d, want 1 and 0", len(b.Events), len(b.Rejected))
	}
	e := b.Events[0]
	if e.Key != "msg#test_msg_001" || e.Kind != webhook.KindMessage || e.WAMID != "test_msg_001" ||
		e.Customer != "1234567890" || e.Timestamp != "1642248600" || e.WABAID != "page_id" {
		t.Fatalf("event = %+v", e)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil || raw["id"] != "test_msg_001" {
		t.Fatalf("raw = %s (%v)", e.Raw, err)
	}
}

func TestParseMetaBatch(t *testing.T) {
	t.Parallel()
	b, err := webhook.Parse([]byte(metaBatch))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range b.Events {
		keys = append(keys, e.Key)
	}
	want := []string{"msg#wamid.A", "msg#wamid.B", "status#wamid.OUT#delivered", "status#wamid.OUT#read"}
	if len(keys) != len(want) {
		t.Fatalf("keys = %v, want %v", keys, want)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Fatalf("keys = %v, want %v", keys, want)
		}
	}
	if got := len(b.Rejected); got != 2 {
		t.Fatalf("rejected = %d, want 2 (message without id, status without status)", got)
	}
	if got := len(b.Errors); got != 1 {
		t.Fatalf("errors = %d, want 1", got)
	}
	a, img := b.Events[0], b.Events[1]
	if a.Contact == nil || a.Contact.Name != "Ana" || img.Contact == nil || img.Contact.Name != "Bo" {
		t.Fatalf("contacts = %+v / %+v", a.Contact, img.Contact)
	}
	if a.PhoneNumberID != "PN1" || a.DisplayPhoneNumber != "15550001111" || a.WABAID != "WABA1" {
		t.Fatalf("metadata = %+v", a)
	}
	st := b.Events[3]
	if st.Kind != webhook.KindStatus || st.Status != "read" || st.Customer != "4915112345" || st.WAMID != "wamid.OUT" {
		t.Fatalf("status = %+v", st)
	}
	// Raw keeps the bytes as sent, emoji included.
	var m struct {
		Text struct{ Body string } `json:"text"`
	}
	if err := json.Unmarshal(a.Raw, &m); err != nil || m.Text.Body != "hi 👋 @ana" {
		t.Fatalf("raw body = %q (%v)", m.Text.Body, err)
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"empty":      ``,
		"not json":   `hello`,
		"truncated":  `{"entry": [`,
		"trailing":   `{} {}`,
		"wrong type": `{"entry": "nope"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := webhook.Parse([]byte(body)); !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseNoEvents(t *testing.T) {
	t.Parallel()
	b, err := webhook.Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"x","changes":[{"field":"account_update","value":{}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events)+len(b.Rejected) != 0 {
		t.Fatalf("got %+v", b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(seedScenario1))
	f.Add([]byte(metaBatch))
	f.Add([]byte(`{"entry":[{"changes":[{"value":{"messages":[1,null,"x",{"id":""}],"statuses":[{"id":"a"}]}}]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range b.Events {
			if e.WAMID == "" || e.Key == "" || seen[e.Key] {
				t.Fatalf("bad or repeated event %+v", e)
			}
			seen[e.Key] = true
			if !json.Valid(e.Raw) {
				t.Fatalf("raw not JSON: %q", e.Raw)
			}
		}
	})
}
