package audit_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	"github.com/wahook/wahook/worker/handlers/audit"
	"github.com/wahook/wahook/worker/processor"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

func setup(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	table := awstest.UniqueName(t.Name())
	for range 2 { // idempotent
		if err := resources.EnsureTable(t.Context(), c.DynamoDB, resources.AuditTableInput(table), zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	}
	return c.DynamoDB, table
}

func event(wamid string, attempt int, pid string) processor.Event {
	env := envelope.FromEvent(webhook.Event{Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid,
		Raw: []byte(`{}`)}, time.Now())
	return processor.Event{Envelope: env, Attempt: attempt, ProcessorID: pid}
}

func read(t *testing.T, db *dynamodb.Client, table, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{audit.AttrPK: &types.AttributeValueMemberS{Value: key}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func n(av types.AttributeValue) string {
	if v, ok := av.(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return "?"
}

func strMap(av types.AttributeValue) map[string]string {
	out := map[string]string{}
	if m, ok := av.(*types.AttributeValueMemberM); ok {
		for k, v := range m.Value {
			if s, ok := v.(*types.AttributeValueMemberS); ok {
				out[k] = s.Value
			}
		}
	}
	return out
}

// Concurrent runs of different attempts (a lost lease, a crash) are all
// counted, each attempt with its processor.
func TestRecordsEveryInvocation(t *testing.T) {
	t.Parallel()
	db, table := setup(t)
	h, err := audit.New(db, audit.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	pids := map[int]string{1: "a-p1", 2: "b-p2", 3: "c-p1"}
	for attempt, pid := range pids {
		wg.Go(func() {
			if err := h.Handle(context.Background(), event("wamid.A", attempt, pid)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	item := read(t, db, table, "msg#wamid.A")
	if n(item[audit.AttrInvocations]) != "3" || n(item[audit.AttrFinishes]) != "3" {
		t.Errorf("invocations %s finishes %s, want 3 and 3", n(item[audit.AttrInvocations]), n(item[audit.AttrFinishes]))
	}
	if runs := strMap(item[audit.AttrRuns]); len(runs) != 3 {
		t.Errorf("runs %v, want 3", runs)
	}
	for _, attr := range []string{audit.AttrAttempts, audit.AttrFinished} {
		got := strMap(item[attr])
		if len(got) != 3 || got["1"] != "a-p1" || got["2"] != "b-p2" || got["3"] != "c-p1" {
			t.Errorf("%s = %v, want every attempt with its processor", attr, got)
		}
	}
}

// The delay ends early when the context does; the start is recorded, the
// finish is not.
func TestDelayHonoursCancellation(t *testing.T) {
	t.Parallel()
	db, table := setup(t)
	// Cancel once the handler has the answer to its start write (it is then
	// in its delay): not on seeing the write in the table, which can come
	// before the handler read the answer, and cut the write instead.
	recorded := make(chan struct{})
	h, err := audit.New(&afterInvocation{DB: db, recorded: recorded}, audit.Options{Table: table, Delay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	var cancelled time.Time
	started := make(chan struct{})
	go func() {
		defer close(started)
		select {
		case <-recorded:
			cancelled = time.Now()
			cancel(processor.ErrShutdown)
		case <-ctx.Done():
		}
	}()
	began := time.Now()
	err = h.Handle(ctx, event("wamid.B", 1, "a-p1"))
	<-started
	if !errors.Is(err, processor.ErrShutdown) || cancelled.IsZero() || time.Since(cancelled) > 5*time.Second {
		t.Errorf("Handle returned %v %s after the cancel, want the cancellation cause promptly", err, time.Since(cancelled))
	}
	if err := h.Close(); err != nil { // the cancelled record, written after Handle returned
		t.Fatal(err)
	}
	item := read(t, db, table, "msg#wamid.B")
	if n(item[audit.AttrInvocations]) != "1" || item[audit.AttrFinishes] != nil {
		t.Errorf("item %v, want one invocation and no finish", item)
	}
	runs := strMap(item[audit.AttrRuns])
	if len(runs) != 1 {
		t.Fatalf("runs %v, want one", runs)
	}
	for _, r := range runs {
		if !strings.HasPrefix(r, "1 a-p1 ") {
			t.Errorf("run %q, want attempt 1 by a-p1 with its start", r)
		}
	}
	// When the context cut the delay is recorded, after the start.
	m, ok := item[audit.AttrCancelled].(*types.AttributeValueMemberM)
	if !ok {
		t.Fatalf("item %v has no %s map", item, audit.AttrCancelled)
	}
	at, err := strconv.ParseInt(n(m.Value["1"]), 10, 64)
	if err != nil || at < began.UnixMilli() || at > time.Now().UnixMilli() {
		t.Errorf("cancelled.1 = %v, want the epoch ms of the cancellation", m.Value["1"])
	}
}

// Handle returns as soon as its context ends, however long the backend takes
// the cancelled record: that is written after it, and Close waits for it.
// Written first, it took seconds on an emulator a busy machine served, past
// the processor's grace, and the worker abandoned the run instead of giving
// the event back.
func TestCancelledRecordDoesNotHoldTheReturn(t *testing.T) {
	t.Parallel()
	db, table := setup(t)
	fake := &afterInvocation{DB: db, recorded: make(chan struct{}), hold: make(chan struct{}), held: make(chan struct{})}
	h, err := audit.New(fake, audit.Options{Table: table, Delay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-fake.recorded:
			cancel(processor.ErrShutdown)
		case <-ctx.Done():
		}
	}()
	err = h.Handle(ctx, event("wamid.C", 1, "a-p1"))
	select {
	case <-fake.held:
		t.Fatalf("Handle returned %v only once the cancelled record's write had ended: it waited for the backend", err)
	default:
	}
	if !errors.Is(err, processor.ErrShutdown) {
		t.Errorf("Handle returned %v, want the cancellation cause", err)
	}
	close(fake.hold)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(t, db, table, "msg#wamid.C")[audit.AttrCancelled].(*types.AttributeValueMemberM); !ok {
		t.Errorf("no %s record after Close", audit.AttrCancelled)
	}
}

// afterInvocation is the handler's DynamoDB client; it closes recorded once
// the write that counts an invocation has been answered.
// With hold set, the writes of the cancelled record (SetField may make two)
// wait for hold to close (or for their context) before they are sent, and
// held is closed once the first returns.
type afterInvocation struct {
	audit.DB
	recorded chan struct{}
	once     sync.Once
	hold     chan struct{}
	held     chan struct{}
	heldOnce sync.Once
}

func (a *afterInvocation) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if a.hold != nil && slices.Contains(slices.Collect(maps.Values(in.ExpressionAttributeNames)), audit.AttrCancelled) {
		defer a.heldOnce.Do(func() { close(a.held) })
		select {
		case <-a.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out, err := a.DB.UpdateItem(ctx, in, o...)
	if err == nil && slices.Contains(slices.Collect(maps.Values(in.ExpressionAttributeNames)), audit.AttrInvocations) {
		a.once.Do(func() { close(a.recorded) })
	}
	return out, err
}
