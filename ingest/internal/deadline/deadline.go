// Package deadline bounds each backend call with its own timeout, so that one
// hung DynamoDB call cannot hold a webhook request past WAHOOK_BACKEND_TIMEOUT
// even when the caller (ledger.Store.Admit) makes several calls under one context.
package deadline

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wahook/wahook/shared/ledger"
)

// DynamoDB wraps db so that every call runs under a context that ends after
// timeout at the latest (the caller's context still ends it sooner).
func DynamoDB(db ledger.DB, timeout time.Duration) ledger.DB {
	return &boundedDB{db: db, timeout: timeout}
}

type boundedDB struct {
	db      ledger.DB
	timeout time.Duration
}

func (b *boundedDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.db.PutItem(ctx, in, opts...)
}

func (b *boundedDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.db.UpdateItem(ctx, in, opts...)
}

func (b *boundedDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.db.GetItem(ctx, in, opts...)
}

func (b *boundedDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.db.BatchGetItem(ctx, in, opts...)
}

func (b *boundedDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.db.DeleteItem(ctx, in, opts...)
}
