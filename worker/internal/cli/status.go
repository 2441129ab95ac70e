package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/spf13/cobra"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

// Status is what `wahook status` reports.
type Status struct {
	LedgerTable string         `json:"ledger_table"`
	Items       int            `json:"items"`
	States      map[string]int `json:"states"`
	MaxAttempt  int            `json:"max_attempt"`
	// OldestUnfinished is the age of the oldest event received, queued or
	// processing (0 when none): how far behind the workers are.
	OldestUnfinished time.Duration  `json:"oldest_unfinished_ns"`
	MessagesTable    string         `json:"messages_table"`
	MessageRows      int            `json:"message_rows"`
	Rows             []any          `json:"rows,omitempty"`
	Queue            QueueDepth     `json:"queue"`
	DLQ              QueueDepth     `json:"dlq"`
	OldestDeadLetter time.Duration  `json:"oldest_dead_letter_ns"`
	DeadLetters      map[string]int `json:"dead_letters_by_reason"`
}

// QueueDepth is one queue's approximate counts.
type QueueDepth struct {
	URL      string `json:"url"`
	Visible  int    `json:"visible"`
	InFlight int    `json:"in_flight"`
	Delayed  int    `json:"delayed"`
}

func (a *app) statusCmd() *cobra.Command {
	var rows bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Ledger states, queue and DLQ depths, oldest unfinished event and dead letter",
		Long: `status scans the ledger (a full table scan: run it as an operator, not in a loop),
counts the messages table, reads both queues' depths, and looks through the
dead-letter queue for the reasons and the oldest dead letter.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.status(cmd.Context(), rows)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(st)
			}
			return a.printStatus(st)
		},
	}
	cmd.Flags().BoolVar(&rows, "rows", false, "also print every row of the messages table")
	return cmd
}

func (a *app) status(ctx context.Context, withRows bool) (Status, error) {
	st := Status{LedgerTable: a.cfg.LedgerTable, MessagesTable: a.cfg.MessagesTable, States: map[string]int{}}
	now := time.Now()
	err := a.scan(ctx, a.cfg.LedgerTable, func(item map[string]dbtypes.AttributeValue) error {
		var it struct {
			Key        string `dynamodbav:"pk"`
			State      string `dynamodbav:"state"`
			Attempt    int    `dynamodbav:"attempt"`
			ReceivedAt int64  `dynamodbav:"received_at"`
		}
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return fmt.Errorf("ledger item: %w", err)
		}
		if it.Key == ledger.ProbeKey {
			return nil // the worker breaker's probe, not an event
		}
		st.Items++
		st.States[it.State]++
		st.MaxAttempt = max(st.MaxAttempt, it.Attempt)
		switch ledger.State(it.State) {
		case ledger.StateReceived, ledger.StateQueued, ledger.StateProcessing:
			if it.ReceivedAt > 0 {
				st.OldestUnfinished = max(st.OldestUnfinished, now.Sub(time.UnixMilli(it.ReceivedAt)))
			}
		}
		return nil
	})
	if err != nil {
		return Status{}, err
	}
	err = a.scan(ctx, a.cfg.MessagesTable, func(item map[string]dbtypes.AttributeValue) error {
		st.MessageRows++
		if withRows {
			var m map[string]any
			if err := attributevalue.UnmarshalMapWithOptions(item, &m, useNumber); err != nil {
				return fmt.Errorf("messages row: %w", err)
			}
			st.Rows = append(st.Rows, m)
		}
		return nil
	})
	if err != nil {
		return Status{}, err
	}
	sort.Slice(st.Rows, func(i, j int) bool {
		return fmt.Sprint(st.Rows[i].(map[string]any)[resources.MessagesKey]) < fmt.Sprint(st.Rows[j].(map[string]any)[resources.MessagesKey])
	})
	if st.Queue, err = a.depth(ctx, a.queueURL); err != nil {
		return Status{}, err
	}
	if st.DLQ, err = a.depth(ctx, a.dlqURL); err != nil {
		return Status{}, err
	}
	st.DeadLetters = map[string]int{}
	if st.DLQ.Visible+st.DLQ.InFlight > 0 {
		letters, err := a.peekDLQ(ctx)
		if err != nil {
			return Status{}, err
		}
		for _, l := range letters {
			st.DeadLetters[l.Reason]++
			st.OldestDeadLetter = max(st.OldestDeadLetter, l.Age)
		}
	}
	return st, nil
}

func (a *app) printStatus(st Status) error {
	w := a.io.Out
	fmt.Fprintf(w, "ledger %s: %d items\n", st.LedgerTable, st.Items)
	for _, s := range []ledger.State{ledger.StateReceived, ledger.StateQueued, ledger.StateProcessing, ledger.StateDone,
		ledger.StateFailed, ledger.StateRejected} {
		fmt.Fprintf(w, "  %-10s %d\n", s, st.States[string(s)])
	}
	fmt.Fprintf(w, "  highest attempt: %d\n", st.MaxAttempt)
	fmt.Fprintf(w, "  oldest unfinished event: %s\n", age(st.OldestUnfinished))
	fmt.Fprintf(w, "messages %s: %d rows\n", st.MessagesTable, st.MessageRows)
	for _, r := range st.Rows {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "  %s\n", b)
	}
	for _, q := range []struct {
		name string
		d    QueueDepth
	}{{"queue", st.Queue}, {"dlq", st.DLQ}} {
		fmt.Fprintf(w, "%-5s %s: visible %d, in flight %d, delayed %d\n", q.name, q.d.URL, q.d.Visible, q.d.InFlight, q.d.Delayed)
	}
	if len(st.DeadLetters) > 0 {
		reasons := make([]string, 0, len(st.DeadLetters))
		for r := range st.DeadLetters {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		fmt.Fprint(w, "  dead letters by reason:")
		for _, r := range reasons {
			fmt.Fprintf(w, " %s %d", r, st.DeadLetters[r])
		}
		fmt.Fprintf(w, "; oldest %s\n", age(st.OldestDeadLetter))
	}
	return nil
}

// scan runs fn on every item of table.
func (a *app) scan(ctx context.Context, table string, fn func(map[string]dbtypes.AttributeValue) error) error {
	p := dynamodb.NewScanPaginator(a.clients.DynamoDB, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("scan %s: %w", table, err)
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *app) depth(ctx context.Context, url string) (QueueDepth, error) {
	out, err := a.clients.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
	})
	if err != nil {
		return QueueDepth{}, fmt.Errorf("depth of %s: %w", url, err)
	}
	n := func(name sqstypes.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(name)])
		return v
	}
	return QueueDepth{URL: url, Visible: n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)}, nil
}
