// Package audit is a VERIFICATION handler for tests, not for production: the
// race suite (e2e) runs workers with it to see, per event key, how often a
// handler was invoked and which processor ran which attempt, and uses its
// delay to kill a worker in the middle of a handler.
//
// Per event key it writes to the audit table (partition key "pk", a string):
//
//	SET runs.<run id> = "<attempt> <processor id> <start, unix ms>"   at the start
//	ADD invocations :1, SET attempts.<attempt> = <processor id>   at the start
//	ADD finishes :1,    SET finished.<attempt> = <processor id>   after the delay
//	SET cancelled.<attempt> = <epoch ms>   when its context ended the delay
//
// The cancelled record is written after Handle has returned (within 5 s, on a
// goroutine Close waits for): a handler is to return promptly once its
// context ends, and a write to a slow backend first (seconds, on an emulator
// a busy machine serves) outlasted the processor's grace and had the run
// abandoned instead of given back.
//
// Between the two it waits Delay, or until its context ends. The run id is
// new for each invocation, so a write the SDK retried after an ambiguous
// reply leaves one run (while invocations, an ADD, may count it twice): runs
// tells invocations apart from retried writes, and when each began.
//
// With Stuck, every event's first attempt then sleeps that long ignoring its
// context (a misbehaving plug-in: the worker must abandon it, not wait).
//
// With FailRate, a share of the events fail their first attempt (a retryable
// error after the first write), chosen by a hash of the key and FailSeed, so
// a test knows which. With SequenceTable, every run that gets past the delay
// then appends "<key>#<attempt>" to the list "seq" of the item keyed by the
// event's FIFO message group (the conversation): the order in which a
// conversation's handler runs completed, re-runs included.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/worker/internal/mapattr"
	"github.com/wahook/wahook/worker/processor"
)

// Attribute names of an audit item.
const (
	AttrPK          = resources.AuditKey // the event key
	AttrInvocations = "invocations"      // handler starts
	AttrAttempts    = "attempts"         // map: attempt → processor id, at the start
	AttrFinishes    = "finishes"         // handler runs that got past the delay
	AttrFinished    = "finished"         // map: attempt → processor id, after the delay
	AttrCancelled   = "cancelled"        // map: attempt → epoch ms when the context cut the delay
	AttrRuns        = "runs"             // map: run id → "<attempt> <processor id> <start unix ms>"
)

// DB is the part of the DynamoDB client the handler uses.
type DB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Options configures a Handler.
type Options struct {
	// Table is the audit table; required.
	Table string
	// Delay is how long each run waits between its two writes (default 0).
	Delay time.Duration
	// SequenceTable, when set, receives each conversation's completion
	// sequence (partition key "pk", a string).
	SequenceTable string
	// FailRate is the share (0..1) of events whose first attempt fails.
	FailRate float64
	// FailSeed picks which events fail.
	FailSeed uint64
	// Stuck, when positive, makes each event's first attempt sleep this long
	// after its start write, ignoring its context, before the delay.
	Stuck time.Duration
}

// Attribute of a sequence item: the list of "<key>#<attempt>" entries.
const AttrSequence = "seq"

// ErrInjected is the retryable failure of an event's first attempt.
var ErrInjected = errors.New("audit: injected failure of the first attempt")

// FailsFirstAttempt reports whether an event key's first attempt fails under
// rate and seed (tests compute the same set).
func FailsFirstAttempt(key string, rate float64, seed uint64) bool {
	if rate <= 0 {
		return false
	}
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(key))
	return float64(h.Sum64()%1_000_000) < rate*1_000_000
}

// Handler records invocations. For tests only.
type Handler struct {
	db   DB
	opts Options

	// pending are the cancelled records being written; errs those that
	// failed. Once closed, a run cut late (one the worker abandoned, still
	// at work) writes its record before it returns.
	pending sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	errs    []error
}

// New returns a Handler.
func New(db DB, opts Options) (*Handler, error) {
	if db == nil {
		return nil, errors.New("audit: nil DynamoDB client")
	}
	if opts.Table == "" {
		return nil, errors.New("audit: empty table name")
	}
	if opts.FailRate < 0 || opts.FailRate > 1 {
		return nil, fmt.Errorf("audit: fail rate %v outside 0..1", opts.FailRate)
	}
	return &Handler{db: db, opts: opts}, nil
}

// Handle implements processor.Handler.
func (h *Handler) Handle(ctx context.Context, ev processor.Event) error {
	run := fmt.Sprintf("%d %s %d", ev.Attempt, ev.ProcessorID, time.Now().UnixMilli())
	err := mapattr.SetField(ctx, h.db, mapattr.Field{
		Table: h.opts.Table,
		Key:   map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: ev.Key()}},
		Map:   AttrRuns, Name: rand.Text(),
		Value: &types.AttributeValueMemberS{Value: run},
	}, mapattr.Extra{})
	if err != nil {
		return fmt.Errorf("audit %s: %w", ev.Key(), err)
	}
	if err := h.record(ctx, ev, AttrAttempts, AttrInvocations); err != nil {
		return err
	}
	if ev.Attempt == 1 && h.opts.Stuck > 0 {
		time.Sleep(h.opts.Stuck) // deliberately deaf to ctx: what a careless plug-in does
	}
	if h.opts.Delay > 0 {
		t := time.NewTimer(h.opts.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			// When the context ended tells the race suite whether a zombie's
			// run was cut as soon as its lease was found lost.
			return h.cut(ctx, ev)
		case <-t.C:
		}
	}
	if ev.Attempt == 1 && FailsFirstAttempt(ev.Key(), h.opts.FailRate, h.opts.FailSeed) {
		return fmt.Errorf("%s: %w", ev.Key(), ErrInjected)
	}
	if err := h.record(ctx, ev, AttrFinished, AttrFinishes); err != nil {
		return err
	}
	return h.appendSequence(ctx, ev)
}

// appendSequence appends the run to its conversation's completion sequence.
func (h *Handler) appendSequence(ctx context.Context, ev processor.Event) error {
	if h.opts.SequenceTable == "" {
		return nil
	}
	entry := ev.Key() + "#" + strconv.Itoa(ev.Attempt)
	_, err := h.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(h.opts.SequenceTable),
		Key:                      map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: ev.Envelope.GroupID()}},
		UpdateExpression:         aws.String("SET #s = list_append(if_not_exists(#s, :empty), :e)"),
		ExpressionAttributeNames: map[string]string{"#s": AttrSequence},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":e":     &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: entry}}},
		},
	})
	if err != nil {
		return fmt.Errorf("audit %s: sequence: %w", ev.Key(), err)
	}
	return nil
}

// cut records when ctx cut ev's run and returns the run's error. The record
// is written on a goroutine Close waits for; once Close has begun, before
// cut returns.
func (h *Handler) cut(ctx context.Context, ev processor.Event) error {
	cause := fmt.Errorf("audit %s: delay: %w", ev.Key(), context.Cause(ctx))
	at := time.Now()
	record := func() error {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return h.cancelled(wctx, ev, at)
	}
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.pending.Go(func() { // under mu: never once Close waits
			if err := record(); err != nil {
				h.mu.Lock()
				h.errs = append(h.errs, err)
				h.mu.Unlock()
			}
		})
	}
	h.mu.Unlock()
	if closed {
		return errors.Join(cause, record())
	}
	return cause
}

// Close waits for the cancelled records still being written and reports
// those that could not be. A run cut after it writes its own.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.pending.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return errors.Join(h.errs...)
}

func (h *Handler) cancelled(ctx context.Context, ev processor.Event, at time.Time) error {
	err := mapattr.SetField(ctx, h.db, mapattr.Field{
		Table: h.opts.Table,
		Key:   map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: ev.Key()}},
		Map:   AttrCancelled, Name: strconv.Itoa(ev.Attempt),
		Value: &types.AttributeValueMemberN{Value: strconv.FormatInt(at.UnixMilli(), 10)},
	}, mapattr.Extra{})
	if err != nil {
		return fmt.Errorf("audit %s: cancelled: %w", ev.Key(), err)
	}
	return nil
}

func (h *Handler) record(ctx context.Context, ev processor.Event, mapAttr, counter string) error {
	err := mapattr.SetField(ctx, h.db, mapattr.Field{
		Table: h.opts.Table,
		Key:   map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: ev.Key()}},
		Map:   mapAttr, Name: strconv.Itoa(ev.Attempt),
		Value: &types.AttributeValueMemberS{Value: ev.ProcessorID},
	}, mapattr.Extra{
		Add:    []string{"#n :one"},
		Names:  map[string]string{"#n": counter},
		Values: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", ev.Key(), err)
	}
	return nil
}
