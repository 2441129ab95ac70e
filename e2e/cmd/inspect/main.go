// Command inspect prints what wahook's backends hold: ledger items by state,
// the messages table's rows and the queues' depths. It reads the same
// environment as the services (AWS_ENDPOINT_URL_*, WAHOOK_LEDGER_TABLE, ...).
//
//	go run ./cmd/inspect            # summary
//	go run ./cmd/inspect -rows      # plus every messages-table row
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

func main() {
	rows := flag.Bool("rows", false, "print every row of the messages table")
	flag.Parse()
	if err := run(*rows); err != nil {
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
}

func run(rows bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.Load[config.Common]()
	if err != nil {
		return err
	}
	cl, err := awsclient.New(ctx, awsclient.Options{})
	if err != nil {
		return err
	}
	ledgerItems, err := scan(ctx, cl.DynamoDB, cfg.LedgerTable)
	if err != nil {
		return err
	}
	states := map[string]int{}
	maxAttempt := 0
	for _, it := range ledgerItems {
		var s struct {
			State   string `dynamodbav:"state"`
			Attempt int    `dynamodbav:"attempt"`
		}
		if err := attributevalue.UnmarshalMap(it, &s); err != nil {
			return fmt.Errorf("ledger item: %w", err)
		}
		states[s.State]++
		maxAttempt = max(maxAttempt, s.Attempt)
	}
	fmt.Printf("ledger %s: %d items\n", cfg.LedgerTable, len(ledgerItems))
	for _, st := range []ledger.State{ledger.StateReceived, ledger.StateQueued, ledger.StateProcessing, ledger.StateDone, ledger.StateFailed} {
		fmt.Printf("  %-10s %d\n", st, states[string(st)])
	}
	fmt.Printf("  highest attempt: %d\n", maxAttempt)

	msgs, err := scan(ctx, cl.DynamoDB, cfg.MessagesTable)
	if err != nil {
		return err
	}
	fmt.Printf("messages %s: %d rows\n", cfg.MessagesTable, len(msgs))
	if rows {
		sort.Slice(msgs, func(i, j int) bool { return key(msgs[i]) < key(msgs[j]) })
		for _, it := range msgs {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				return fmt.Errorf("messages row: %w", err)
			}
			b, _ := json.Marshal(m)
			fmt.Printf("  %s\n", b)
		}
	}

	queueURL, err := resources.QueueURL(ctx, cl.SQS, cfg)
	if err != nil {
		return err
	}
	dlqURL, err := resources.DeadLetterURL(ctx, cl.SQS, queueURL)
	if err != nil {
		return err
	}
	for name, url := range map[string]string{"queue": queueURL, "dlq": dlqURL} {
		out, err := cl.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(url),
			AttributeNames: []sqstypes.QueueAttributeName{
				sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		})
		if err != nil {
			return fmt.Errorf("attributes of %s: %w", url, err)
		}
		fmt.Printf("%-5s %s: visible %s, in flight %s\n", name, url,
			out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)],
			out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	}
	return nil
}

func key(it map[string]types.AttributeValue) string {
	if v, ok := it[resources.MessagesKey].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func scan(ctx context.Context, db *dynamodb.Client, table string) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		items = append(items, page.Items...)
	}
	return items, nil
}
