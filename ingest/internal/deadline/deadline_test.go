package deadline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wahook/wahook/ingest/internal/deadline"
)

// hungDB never answers: every call waits for its context.
type hungDB struct{}

func (hungDB) PutItem(ctx context.Context, _ *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungDB) UpdateItem(ctx context.Context, _ *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungDB) GetItem(ctx context.Context, _ *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungDB) BatchGetItem(ctx context.Context, _ *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungDB) DeleteItem(ctx context.Context, _ *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestEachCallIsBounded(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	db := deadline.DynamoDB(hungDB{}, timeout)
	calls := map[string]func(context.Context) error{
		"PutItem":      func(ctx context.Context) error { _, err := db.PutItem(ctx, nil); return err },
		"UpdateItem":   func(ctx context.Context) error { _, err := db.UpdateItem(ctx, nil); return err },
		"GetItem":      func(ctx context.Context) error { _, err := db.GetItem(ctx, nil); return err },
		"BatchGetItem": func(ctx context.Context) error { _, err := db.BatchGetItem(ctx, nil); return err },
		"DeleteItem":   func(ctx context.Context) error { _, err := db.DeleteItem(ctx, nil); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The caller's context is far longer: the per-call bound ends the call.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			began := time.Now()
			err := call(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want DeadlineExceeded", err)
			}
			if took := time.Since(began); took < timeout || took > 10*timeout {
				t.Errorf("took %v, want about %v", took, timeout)
			}
			if ctx.Err() != nil {
				t.Error("the caller's context ended too")
			}
		})
	}
}

func TestCallerCancellationStillWins(t *testing.T) {
	t.Parallel()
	db := deadline.DynamoDB(hungDB{}, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := db.GetItem(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want Canceled", err)
	}
}
