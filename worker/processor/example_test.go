package processor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/worker/processor"
)

// errUnknownCustomer is a failure no retry fixes.
var errUnknownCustomer = errors.New("unknown customer")

// A handler of your own, from your own module: key its side effects by
// ev.Key() and fence them with ev.Attempt, since a crash or a lost lease may
// run it again.
func Example() {
	h := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		switch {
		case ev.Envelope.Customer == "":
			return processor.Permanent(errUnknownCustomer) // dead-lettered, not retried
		case ev.Attempt > 3:
			return processor.RetryAfter(time.Minute, errors.New("still busy")) // retried in a minute
		}
		fmt.Println("handling", ev.Key(), "attempt", ev.Attempt)
		return nil
	})

	var (
		db  *dynamodb.Client // from awsclient.New
		sqc *sqs.Client
	)
	store, err := ledger.New(db, "wahook-ledger", ledger.Options{})
	if err != nil {
		return
	}
	pool, err := processor.New(processor.Options{
		QueueURL:      "https://sqs.eu-west-1.amazonaws.com/123456789012/wahook-events",
		DeadLetterURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/wahook-events-dlq",
	}, processor.Deps{Ledger: store, Queue: sqc, Handler: h})
	if err != nil {
		return
	}
	_ = pool.Run // pool.Run(ctx) until ctx ends, then a graceful shutdown
}
