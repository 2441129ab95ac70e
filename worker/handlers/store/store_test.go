package store_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/handlers/store"
	"github.com/wahook/wahook/worker/processor"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

type fixture struct {
	t     *testing.T
	db    *dynamodb.Client
	table string
	h     *store.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	table := awstest.UniqueName(t.Name())
	if err := resources.EnsureTable(t.Context(), c.DynamoDB, resources.MessagesTableInput(table), zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	h, err := store.New(c.DynamoDB, table)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: c.DynamoDB, table: table, h: h}
}

func statusEvent(wamid, status, ts string, extra string) processor.Event {
	raw := fmt.Sprintf(`{"id":%q,"status":%q,"timestamp":%q,"recipient_id":"15550002222"%s}`, wamid, status, ts, extra)
	env := envelope.FromEvent(webhook.Event{
		Key: webhook.StatusKey(wamid, status), Kind: webhook.KindStatus, WAMID: wamid, Status: status,
		Customer: "15550002222", Timestamp: ts, PhoneNumberID: "PNID", Raw: []byte(raw),
	}, time.Now())
	return processor.Event{Envelope: env, Attempt: 1}
}

func messageEvent(wamid, raw string) processor.Event {
	env := envelope.FromEvent(webhook.Event{
		Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: "15550001111",
		Timestamp: "1700000000", PhoneNumberID: "PNID", DisplayPhoneNumber: "+1 555 000", WABAID: "WABA",
		Contact: &webhook.Contact{WaID: "15550001111", Name: "Ana"}, Raw: []byte(raw),
	}, time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC))
	return processor.Event{Envelope: env, Attempt: 1}
}

func (f *fixture) handle(ev processor.Event) {
	f.t.Helper()
	if err := f.h.Handle(context.Background(), ev); err != nil {
		f.t.Fatalf("Handle %s: %v", ev.Key(), err)
	}
}

func (f *fixture) item(wamid string) map[string]types.AttributeValue {
	f.t.Helper()
	out, err := f.db.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: &f.table, Key: map[string]types.AttributeValue{store.AttrWAMID: &types.AttributeValueMemberS{Value: wamid}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out.Item
}

func s(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return fmt.Sprintf("%T", av)
}

func statuses(item map[string]types.AttributeValue) map[string]string {
	m, _ := item[store.AttrStatuses].(*types.AttributeValueMemberM)
	out := map[string]string{}
	if m != nil {
		for k, v := range m.Value {
			out[k] = s(v)
		}
	}
	return out
}

func TestMessagesStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name, wamid, raw string
		want             map[string]string
		absent           []string
	}{
		{"text without type (the seed's shape)", "wamid.text",
			`{"id":"wamid.text","from":"15550001111","timestamp":"1642248600","text":{"body":"Test message"}}`,
			map[string]string{store.AttrType: "text", store.AttrTextBody: "Test message", store.AttrTimestamp: "1642248600",
				store.AttrFrom: "15550001111", store.AttrContactName: "Ana", store.AttrPhoneNumberID: "PNID",
				store.AttrReceivedAt: "2024-01-15T10:30:00Z", store.AttrDirection: store.DirectionInbound,
				store.AttrEventKey: "msg#wamid.text"},
			[]string{store.AttrMediaID}},
		{"image", "wamid.img",
			`{"id":"wamid.img","from":"15550001111","timestamp":"1700000001","type":"image","image":{"id":"MEDIA1","mime_type":"image/jpeg","caption":"look"}}`,
			map[string]string{store.AttrType: "image", store.AttrMediaID: "MEDIA1", store.AttrMediaMIMEType: "image/jpeg",
				store.AttrCaption: "look", store.AttrTimestamp: "1700000001"},
			[]string{store.AttrTextBody}},
	} {
		ev := messageEvent(tc.wamid, tc.raw)
		f.handle(ev)
		f.handle(ev) // idempotent
		item := f.item(tc.wamid)
		for k, want := range tc.want {
			if got := s(item[k]); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got, want)
			}
		}
		for _, k := range tc.absent {
			if _, ok := item[k]; ok {
				t.Errorf("%s: unexpected %s", tc.name, k)
			}
		}
		if s(item[store.AttrPayload]) != tc.raw {
			t.Errorf("%s: payload %q, want the raw message", tc.name, s(item[store.AttrPayload]))
		}
	}
}

// sent, delivered and read of one message arrive concurrently, in every
// order, several rounds: the item ends "read" with all three timestamps.
func TestStatusesConcurrentEveryOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	perms := [][]string{
		{"sent", "delivered", "read"}, {"sent", "read", "delivered"}, {"delivered", "sent", "read"},
		{"delivered", "read", "sent"}, {"read", "sent", "delivered"}, {"read", "delivered", "sent"},
	}
	ts := map[string]string{"sent": "1700000100", "delivered": "1700000200", "read": "1700000300"}
	const rounds = 4
	for round := range rounds {
		for p, perm := range perms {
			wamid := fmt.Sprintf("wamid.r%d.p%d", round, p)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, len(perm))
			for i, st := range perm {
				wg.Go(func() {
					<-start
					// Stagger starts by order within the permutation, so every order gets exercised.
					time.Sleep(time.Duration(i) * time.Millisecond)
					errs <- f.h.Handle(context.Background(), statusEvent(wamid, st, ts[st], ""))
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("%s %v: %v", wamid, perm, err)
				}
			}
			item := f.item(wamid)
			if s(item[store.AttrStatus]) != "read" || s(item[store.AttrStatusRank]) != "3" || s(item[store.AttrStatusTimestamp]) != ts["read"] {
				t.Errorf("%s %v: status %s rank %s ts %s, want read 3 %s", wamid, perm, s(item[store.AttrStatus]),
					s(item[store.AttrStatusRank]), s(item[store.AttrStatusTimestamp]), ts["read"])
			}
			if got := statuses(item); len(got) != 3 || got["sent"] != ts["sent"] || got["delivered"] != ts["delivered"] || got["read"] != ts["read"] {
				t.Errorf("%s %v: statuses %v, want all three timestamps", wamid, perm, got)
			}
		}
	}
}

// failed is terminal: a later read or delivered does not replace it, and its
// errors are kept.
func TestFailedIsTerminal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const errs = `,"errors":[{"code":131026,"title":"Message undeliverable","error_data":{"details":"x"}}]`
	for _, order := range [][]string{{"sent", "failed", "delivered", "read"}, {"failed", "read"}, {"read", "failed", "delivered"}} {
		wamid := fmt.Sprintf("wamid.failed.%d", len(order))
		for i, st := range order {
			extra := ""
			if st == "failed" {
				extra = errs
			}
			f.handle(statusEvent(wamid, st, strconv.Itoa(1700000000+i), extra))
		}
		item := f.item(wamid)
		if s(item[store.AttrStatus]) != "failed" || s(item[store.AttrStatusRank]) != strconv.Itoa(store.RankFailed) {
			t.Errorf("%v: status %s, want failed", order, s(item[store.AttrStatus]))
		}
		if got := statuses(item); len(got) != len(order) {
			t.Errorf("%v: statuses %v, want every status seen", order, got)
		}
		l, ok := item[store.AttrStatusErrors].(*types.AttributeValueMemberL)
		if !ok || len(l.Value) != 1 {
			t.Fatalf("%v: status_errors %#v, want one error", order, item[store.AttrStatusErrors])
		}
		e := l.Value[0].(*types.AttributeValueMemberM).Value
		if s(e["code"]) != "131026" || s(e["title"]) != "Message undeliverable" {
			t.Errorf("%v: error %v", order, e)
		}
	}
}

// A stale status never downgrades; a repeated one changes nothing.
func TestStaleAndRepeatedStatuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.handle(statusEvent("wamid.stale", "read", "1700000300", ""))
	f.handle(statusEvent("wamid.stale", "delivered", "1700000200", ""))
	f.handle(statusEvent("wamid.stale", "read", "1700000300", ""))
	item := f.item("wamid.stale")
	if s(item[store.AttrStatus]) != "read" {
		t.Errorf("status %s, want read", s(item[store.AttrStatus]))
	}
	if got := statuses(item); len(got) != 2 || got["delivered"] != "1700000200" {
		t.Errorf("statuses %v", got)
	}
}

// A status may come before anything else is known of the message, and a
// message write never clobbers status fields (and vice versa).
func TestStatusAndMessageFieldsCoexist(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := `{"id":"wamid.both","from":"15550001111","timestamp":"1700000000","text":{"body":"hello"}}`
	f.handle(statusEvent("wamid.both", "delivered", "1700000200", ""))
	f.handle(messageEvent("wamid.both", raw))
	f.handle(statusEvent("wamid.both", "read", "1700000300", ""))
	item := f.item("wamid.both")
	if s(item[store.AttrStatus]) != "read" || s(item[store.AttrTextBody]) != "hello" || len(statuses(item)) != 2 ||
		s(item[store.AttrRecipientID]) != "15550002222" {
		t.Errorf("item %v, want message and status fields together", item)
	}
}
