package harness

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/wahook/wahook/shared/webhook"
)

// MessageType is an inbound message's type, as Meta names it.
type MessageType string

// The inbound types the generator produces.
const (
	TypeText        MessageType = "text"
	TypeImage       MessageType = "image"
	TypeInteractive MessageType = "interactive"
)

// Message is an inbound message.
type Message struct {
	ID        string
	From      string // the customer's wa_id
	Name      string // the customer's profile name
	Timestamp string // epoch seconds
	Type      MessageType
	Text      string // text body, or image caption
	MediaID   string // image
	ReplyID   string // interactive button reply id
	Title     string // interactive button reply title
	// Context is the wamid this message replies to, if any.
	Context string
}

// Key is the message's ledger key.
func (m Message) Key() string { return webhook.MessageKey(m.ID) }

// Status is a delivery status of an outbound message.
type Status struct {
	ID          string // the outbound message's wamid
	Status      string // sent, delivered, read, played, failed
	RecipientID string
	Timestamp   string
}

// Key is the status's ledger key.
func (s Status) Key() string { return webhook.StatusKey(s.ID, s.Status) }

// StatusRank orders statuses as the store handler does; failed is terminal.
var StatusRank = map[string]int{"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 100}

// Payload is one webhook body: one business account, one phone number, any
// number of messages and statuses.
type Payload struct {
	WABAID             string
	PhoneNumberID      string
	DisplayPhoneNumber string
	Messages           []Message
	Statuses           []Status
}

// Keys lists the ledger keys the payload carries, in order.
func (p Payload) Keys() []string {
	keys := make([]string, 0, len(p.Messages)+len(p.Statuses))
	for _, m := range p.Messages {
		keys = append(keys, m.Key())
	}
	for _, s := range p.Statuses {
		keys = append(keys, s.Key())
	}
	return keys
}

// JSON renders the body as the WhatsApp Cloud API sends it: messages and
// statuses in separate changes of one entry, contacts beside the messages.
func (p Payload) JSON() []byte {
	metadata := map[string]any{"display_phone_number": p.DisplayPhoneNumber, "phone_number_id": p.PhoneNumberID}
	var changes []any
	if len(p.Messages) > 0 {
		var contacts, messages []any
		seen := map[string]bool{}
		for _, m := range p.Messages {
			if !seen[m.From] {
				seen[m.From] = true
				contacts = append(contacts, map[string]any{"profile": map[string]any{"name": m.Name}, "wa_id": m.From})
			}
			messages = append(messages, m.object())
		}
		changes = append(changes, map[string]any{
			"field": "messages",
			"value": map[string]any{"messaging_product": "whatsapp", "metadata": metadata, "contacts": contacts, "messages": messages},
		})
	}
	if len(p.Statuses) > 0 {
		var statuses []any
		for _, s := range p.Statuses {
			statuses = append(statuses, s.object())
		}
		changes = append(changes, map[string]any{
			"field": "messages",
			"value": map[string]any{"messaging_product": "whatsapp", "metadata": metadata, "statuses": statuses},
		})
	}
	body := map[string]any{
		"object": "whatsapp_business_account",
		"entry":  []any{map[string]any{"id": p.WABAID, "changes": changes}},
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("marshal payload: %v", err)) // maps of strings: cannot fail
	}
	return b
}

func (m Message) object() map[string]any {
	o := map[string]any{"from": m.From, "id": m.ID, "timestamp": m.Timestamp, "type": string(m.Type)}
	switch m.Type {
	case TypeImage:
		o["image"] = map[string]any{
			"caption": m.Text, "mime_type": "image/jpeg", "id": m.MediaID,
			"sha256": base64.StdEncoding.EncodeToString([]byte(m.MediaID + "-sha256-of-the-media-bytes")),
		}
	case TypeInteractive:
		o["interactive"] = map[string]any{
			"type":         "button_reply",
			"button_reply": map[string]any{"id": m.ReplyID, "title": m.Title},
		}
	default:
		o["text"] = map[string]any{"body": m.Text}
	}
	if m.Context != "" {
		o["context"] = map[string]any{"from": m.From, "id": m.Context}
	}
	return o
}

func (s Status) object() map[string]any {
	o := map[string]any{"id": s.ID, "status": s.Status, "timestamp": s.Timestamp, "recipient_id": s.RecipientID}
	switch s.Status {
	case "failed":
		o["errors"] = []any{map[string]any{
			"code": 131026, "title": "Message undeliverable",
			"message":    "Message undeliverable",
			"error_data": map[string]any{"details": "Message Undeliverable."},
		}}
	default:
		o["conversation"] = map[string]any{"id": "CONVERSATION_" + s.RecipientID, "origin": map[string]any{"type": "service"}}
		o["pricing"] = map[string]any{"billable": true, "pricing_model": "PMP", "category": "service"}
	}
	return o
}

// SeedPayload is the seed guide's own shape: no object, no field, no metadata,
// no contacts — ingest must take it as it is.
func SeedPayload(id, from, body, timestamp string) []byte {
	return fmt.Appendf(nil, `{"entry":[{"id":"page_id","changes":[{"value":{"messages":[{"id":%q,"from":%q,"text":{"body":%q},"timestamp":%q}]}}]}]}`,
		id, from, body, timestamp)
}

// Gen produces realistic, unique wamids, customers and events from a seeded
// RNG. It is not safe for concurrent use.
type Gen struct {
	rng                *rand.Rand
	WABAID             string
	PhoneNumberID      string
	DisplayPhoneNumber string
	now                int64
}

// NewGen returns a generator; the same seed gives the same events.
func NewGen(seed uint64) *Gen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Gen{
		rng:                rng,
		WABAID:             strconv.FormatInt(100000000000000+rng.Int64N(899999999999999), 10),
		PhoneNumberID:      strconv.FormatInt(100000000000000+rng.Int64N(899999999999999), 10),
		DisplayPhoneNumber: "1555" + strconv.Itoa(1000000+rng.IntN(8999999)),
		now:                time.Now().Unix(),
	}
}

// Rand is the generator's RNG (for shuffles that must follow the seed).
func (g *Gen) Rand() *rand.Rand { return g.rng }

// WAMID returns a new WhatsApp message id shaped like Meta's
// (wamid.<base64 of a binary id>, with '=' padding and '+' or '/' inside).
func (g *Gen) WAMID() string {
	raw := make([]byte, 29)
	for i := range raw {
		raw[i] = byte(g.rng.IntN(256))
	}
	copy(raw, "\x18\x0b")
	return "wamid." + base64.StdEncoding.EncodeToString(raw)
}

// Customer returns a customer's wa_id and profile name.
func (g *Gen) Customer() (waID, name string) {
	first := []string{"Sheena", "Ana", "Ravi", "Chen", "Fatima", "Lukas", "Amara", "Diego", "Yuki", "Olu"}
	last := []string{"Nelson", "Souza", "Patel", "Wei", "Khan", "Müller", "Okafor", "García", "Sato", "Adeyemi"}
	return "1650" + strconv.Itoa(1000000+g.rng.IntN(8999999)),
		first[g.rng.IntN(len(first))] + " " + last[g.rng.IntN(len(last))]
}

// Message returns an inbound message of a random type from a new customer.
func (g *Gen) Message() Message {
	from, name := g.Customer()
	return g.MessageFrom(from, name)
}

// MessageFrom returns an inbound message of a random type from the customer.
func (g *Gen) MessageFrom(from, name string) Message {
	g.now++
	m := Message{ID: g.WAMID(), From: from, Name: name, Timestamp: strconv.FormatInt(g.now, 10)}
	switch g.rng.IntN(10) {
	case 0, 1, 2:
		m.Type, m.MediaID, m.Text = TypeImage, strconv.FormatInt(1000000000000000+g.rng.Int64N(8999999999999999), 10), "photo 📷"
	case 3, 4:
		m.Type, m.ReplyID, m.Title = TypeInteractive, "btn-"+strconv.Itoa(g.rng.IntN(3)), []string{"Yes", "No", "Talk to a human"}[g.rng.IntN(3)]
	default:
		m.Type, m.Text = TypeText, []string{"Does it come in another color?", "Olá! Quero fazer um pedido", "Where is my order #" + strconv.Itoa(g.rng.IntN(99999)), "👍", "Can I pay on delivery?"}[g.rng.IntN(5)]
	}
	if g.rng.IntN(5) == 0 {
		m.Context = g.WAMID()
	}
	return m
}

// Messages returns n messages (several per customer, as conversations go).
func (g *Gen) Messages(n int) []Message {
	out := make([]Message, 0, n)
	for len(out) < n {
		from, name := g.Customer()
		for k := 1 + g.rng.IntN(3); k > 0 && len(out) < n; k-- {
			out = append(out, g.MessageFrom(from, name))
		}
	}
	return out
}

// Lifecycle returns the statuses an outbound message goes through: sent,
// delivered, read (or sent, failed), with increasing timestamps.
func (g *Gen) Lifecycle(wamid, recipient string) []Status {
	g.now += 3
	seq := []string{"sent", "delivered", "read"}
	switch g.rng.IntN(10) {
	case 0:
		seq = []string{"sent", "failed"}
	case 1, 2:
		seq = []string{"sent", "delivered"}
	}
	out := make([]Status, len(seq))
	for i, s := range seq {
		out[i] = Status{ID: wamid, Status: s, RecipientID: recipient, Timestamp: strconv.FormatInt(g.now+int64(i), 10)}
	}
	return out
}

// Payload wraps events in a body from the generator's business number.
func (g *Gen) Payload(msgs []Message, statuses []Status) Payload {
	return Payload{
		WABAID: g.WABAID, PhoneNumberID: g.PhoneNumberID, DisplayPhoneNumber: g.DisplayPhoneNumber,
		Messages: msgs, Statuses: statuses,
	}
}

// Batches splits messages into payloads of 1..maxPer events.
func (g *Gen) Batches(msgs []Message, maxPer int) []Payload {
	var out []Payload
	for len(msgs) > 0 {
		n := min(1+g.rng.IntN(maxPer), len(msgs))
		out = append(out, g.Payload(msgs[:n], nil))
		msgs = msgs[n:]
	}
	return out
}
