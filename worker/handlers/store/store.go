// Package store is the built-in handler that keeps WhatsApp messages and their
// delivery statuses in the messages table (partition key "wamid").
//
// Inbound messages are written idempotently, keyed by wamid. Statuses are
// applied to the outbound message's item monotonically — sent < delivered <
// read < played, failed terminal — under a condition on the stored rank, so a
// late or repeated status never downgrades the item; every status seen is kept
// with Meta's timestamp in the "statuses" map. A status may be the first thing
// known of a message: its write creates the item. All writes are UpdateItem
// SETs of their own fields, so message fields and status fields written for the
// same wamid never clobber each other, and any write may be repeated.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/internal/mapattr"
	"github.com/wahook/wahook/worker/processor"
)

// Attribute names of a messages-table item.
const (
	AttrWAMID              = resources.MessagesKey // "wamid"
	AttrDirection          = "direction"           // "inbound" for messages received
	AttrEventKey           = "event_key"
	AttrFrom               = "from"
	AttrContactName        = "contact_name"
	AttrType               = "type"
	AttrTextBody           = "text_body"
	AttrMediaID            = "media_id"
	AttrMediaMIMEType      = "media_mime_type"
	AttrCaption            = "caption"
	AttrTimestamp          = "timestamp" // Meta's, epoch seconds
	AttrPhoneNumberID      = "phone_number_id"
	AttrDisplayPhoneNumber = "display_phone_number"
	AttrWABAID             = "waba_id"
	AttrReceivedAt         = "received_at" // when ingest accepted the event, RFC 3339
	AttrPayload            = "payload"     // the raw message object, JSON
	AttrRecipientID        = "recipient_id"
	AttrStatus             = "status"           // the highest-ranked status seen
	AttrStatusRank         = "status_rank"      // its rank
	AttrStatusTimestamp    = "status_timestamp" // its Meta timestamp
	AttrStatuses           = "statuses"         // map: every status seen → Meta timestamp
	AttrStatusErrors       = "status_errors"    // a failed status's errors, as Meta sent them
)

// DirectionInbound marks items written for inbound messages.
const DirectionInbound = "inbound"

// RankFailed is the rank of "failed": above every other, so it is terminal.
const RankFailed = 100

// Rank is a status's place in the order sent < delivered < read < played, and
// failed above all. Unknown statuses rank 0: kept in the statuses map only.
func Rank(status string) int {
	switch status {
	case "sent":
		return 1
	case "delivered":
		return 2
	case "read":
		return 3
	case "played":
		return 4
	case "failed":
		return RankFailed
	}
	return 0
}

// DB is the part of the DynamoDB client the handler uses.
type DB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Handler stores messages and statuses.
type Handler struct {
	db    DB
	table string
}

// New returns a Handler writing to table.
func New(db DB, table string) (*Handler, error) {
	if db == nil {
		return nil, errors.New("store: nil DynamoDB client")
	}
	if table == "" {
		return nil, errors.New("store: empty messages table name")
	}
	return &Handler{db: db, table: table}, nil
}

// Handle implements processor.Handler. DynamoDB failures are retryable; a
// payload that cannot be read is permanent.
func (h *Handler) Handle(ctx context.Context, ev processor.Event) error {
	switch ev.Envelope.Kind {
	case webhook.KindMessage:
		return h.message(ctx, ev)
	case webhook.KindStatus:
		return h.status(ctx, ev)
	}
	return processor.Permanent(fmt.Errorf("store %s: unknown kind %q", ev.Key(), ev.Envelope.Kind))
}

// mediaTypes are the message types whose object carries a media id.
var mediaTypes = []string{"image", "audio", "video", "document", "sticker", "voice"}

// knownTypes are looked for, in order, when a message has no "type" (the
// seed's payloads have none).
var knownTypes = []string{"text", "image", "audio", "video", "document", "sticker", "voice",
	"location", "contacts", "interactive", "button", "reaction", "order", "system"}

type media struct {
	ID       string `json:"id"`
	MIMEType string `json:"mime_type"`
	Caption  string `json:"caption"`
}

// update collects SET clauses with generated placeholders.
type update struct {
	sets   []string
	names  map[string]string
	values map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// set adds `SET attr = v`, skipping an empty string.
func (u *update) set(attr string, v types.AttributeValue) {
	if s, ok := v.(*types.AttributeValueMemberS); ok && s.Value == "" {
		return
	}
	n := strconv.Itoa(len(u.sets))
	u.names["#a"+n] = attr
	u.values[":v"+n] = v
	u.sets = append(u.sets, "#a"+n+" = :v"+n)
}

func (u *update) expression() string {
	expr := "SET "
	for i, s := range u.sets {
		if i > 0 {
			expr += ", "
		}
		expr += s
	}
	return expr
}

func (h *Handler) message(ctx context.Context, ev processor.Event) error {
	env := ev.Envelope
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(env.Payload, &fields); err != nil {
		return processor.Permanent(fmt.Errorf("store %s: message payload: %w", env.Key, err))
	}
	var head struct {
		From      string `json:"from"`
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Text      *struct {
			Body string `json:"body"`
		} `json:"text"`
	}
	if err := json.Unmarshal(env.Payload, &head); err != nil {
		return processor.Permanent(fmt.Errorf("store %s: message payload: %w", env.Key, err))
	}
	typ := head.Type
	if typ == "" {
		for _, t := range knownTypes {
			if _, ok := fields[t]; ok {
				typ = t
				break
			}
		}
	}
	u := newUpdate()
	u.set(AttrDirection, str(DirectionInbound))
	u.set(AttrEventKey, str(env.Key))
	u.set(AttrFrom, str(firstNonEmpty(head.From, env.Customer)))
	if env.Contact != nil {
		u.set(AttrContactName, str(env.Contact.Name))
	}
	u.set(AttrType, str(typ))
	if head.Text != nil {
		u.set(AttrTextBody, str(head.Text.Body))
	}
	if raw, ok := fields[typ]; ok && isMedia(typ) {
		var m media
		if err := json.Unmarshal(raw, &m); err == nil {
			u.set(AttrMediaID, str(m.ID))
			u.set(AttrMediaMIMEType, str(m.MIMEType))
			u.set(AttrCaption, str(m.Caption))
		}
	}
	if ts := firstNonEmpty(head.Timestamp, env.Timestamp); ts != "" {
		u.set(AttrTimestamp, timestamp(ts))
	}
	u.set(AttrPhoneNumberID, str(env.PhoneNumberID))
	u.set(AttrDisplayPhoneNumber, str(env.DisplayPhoneNumber))
	u.set(AttrWABAID, str(env.WABAID))
	if !env.ReceivedAt.IsZero() {
		u.set(AttrReceivedAt, str(env.ReceivedAt.UTC().Format(time.RFC3339Nano)))
	}
	u.set(AttrPayload, str(string(env.Payload)))
	_, err := h.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(h.table),
		Key:                       key(env.WAMID),
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
	})
	if err != nil {
		return fmt.Errorf("store %s: put message: %w", env.Key, err)
	}
	return nil
}

func (h *Handler) status(ctx context.Context, ev processor.Event) error {
	env := ev.Envelope
	var head struct {
		Timestamp   string          `json:"timestamp"`
		RecipientID string          `json:"recipient_id"`
		Errors      json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(env.Payload, &head); err != nil {
		return processor.Permanent(fmt.Errorf("store %s: status payload: %w", env.Key, err))
	}
	ts := firstNonEmpty(head.Timestamp, env.Timestamp)
	tsValue := timestamp(ts)
	if ts == "" {
		tsValue = num(env.ReceivedAt.Unix())
	}

	// 1. Keep the status with its timestamp (idempotent), creating the item.
	extra := newUpdate()
	extra.set(AttrRecipientID, str(firstNonEmpty(head.RecipientID, env.Customer)))
	extra.set(AttrPhoneNumberID, str(env.PhoneNumberID))
	err := mapattr.SetField(ctx, h.db, mapattr.Field{
		Table: h.table, Key: key(env.WAMID), Map: AttrStatuses, Name: env.Status, Value: tsValue,
	}, mapattr.Extra{Set: extra.sets, Names: extra.names, Values: extra.values})
	if err != nil {
		return fmt.Errorf("store %s: record status: %w", env.Key, err)
	}

	// 2. Move the current status up, never down.
	rank := Rank(env.Status)
	if rank == 0 {
		return nil
	}
	u := newUpdate()
	u.set(AttrStatus, str(env.Status))
	u.set(AttrStatusTimestamp, tsValue)
	if env.Status == "failed" && len(bytes.TrimSpace(head.Errors)) > 0 && !bytes.Equal(bytes.TrimSpace(head.Errors), []byte("null")) {
		errs, err := fromJSON(head.Errors)
		if err != nil {
			return processor.Permanent(fmt.Errorf("store %s: status errors: %w", env.Key, err))
		}
		u.set(AttrStatusErrors, errs)
	}
	u.sets = append(u.sets, "#rank = :rank")
	u.names["#rank"] = AttrStatusRank
	u.values[":rank"] = num(int64(rank))
	_, err = h.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(h.table),
		Key:                       key(env.WAMID),
		UpdateExpression:          aws.String(u.expression()),
		ConditionExpression:       aws.String("attribute_not_exists(#rank) OR #rank < :rank"),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
	})
	if awserr.ConditionFailed(err) {
		return nil // an equal or higher status is stored already: nothing to do
	}
	if err != nil {
		return fmt.Errorf("store %s: apply status: %w", env.Key, err)
	}
	return nil
}

func isMedia(typ string) bool { return slices.Contains(mediaTypes, typ) }

func key(wamid string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrWAMID: str(wamid)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// timestamp stores Meta's epoch-seconds string as a number, anything else as
// the string it is.
func timestamp(ts string) types.AttributeValue {
	if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return num(n)
	}
	return str(ts)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// fromJSON converts a JSON value into a DynamoDB attribute value.
func fromJSON(raw json.RawMessage) (types.AttributeValue, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return toAttr(v), nil
}

func toAttr(v any) types.AttributeValue {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]types.AttributeValue, len(v))
		for k, e := range v {
			m[k] = toAttr(e)
		}
		return &types.AttributeValueMemberM{Value: m}
	case []any:
		l := make([]types.AttributeValue, len(v))
		for i, e := range v {
			l[i] = toAttr(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case string:
		return str(v)
	case json.Number:
		return &types.AttributeValueMemberN{Value: v.String()}
	case bool:
		return &types.AttributeValueMemberBOOL{Value: v}
	default:
		return &types.AttributeValueMemberNULL{Value: true}
	}
}
