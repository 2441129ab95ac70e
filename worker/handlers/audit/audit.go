// Package audit is a VERIFICATION handler for tests, not for production: the
// race suite (e2e) runs workers with it to see, per event key, how often a
// handler was invoked and which processor ran which attempt, and uses its
// delay to kill a worker in the middle of a handler.
//
// Per event key it writes to the audit table (partition key "pk", a string):
//
//	ADD invocations :1, SET attempts.<attempt> = <processor id>   at the start
//	ADD finishes :1,    SET finished.<attempt> = <processor id>   after the delay
//
// Between the two it waits Delay, or until its context ends.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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
}

// Handler records invocations. For tests only.
type Handler struct {
	db   DB
	opts Options
}

// New returns a Handler.
func New(db DB, opts Options) (*Handler, error) {
	if db == nil {
		return nil, errors.New("audit: nil DynamoDB client")
	}
	if opts.Table == "" {
		return nil, errors.New("audit: empty table name")
	}
	return &Handler{db: db, opts: opts}, nil
}

// Handle implements processor.Handler.
func (h *Handler) Handle(ctx context.Context, ev processor.Event) error {
	if err := h.record(ctx, ev, AttrAttempts, AttrInvocations); err != nil {
		return err
	}
	if h.opts.Delay > 0 {
		t := time.NewTimer(h.opts.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("audit %s: delay: %w", ev.Key(), context.Cause(ctx))
		case <-t.C:
		}
	}
	return h.record(ctx, ev, AttrFinished, AttrFinishes)
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
