package cli

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/spf13/cobra"

	"github.com/wahook/wahook/shared/deadletter"
)

// DeadLetter is one message in the dead-letter queue, as its attributes
// describe it (shared/deadletter).
type DeadLetter struct {
	ID        string            `json:"id"`
	Reason    string            `json:"reason"`
	Key       string            `json:"key,omitempty"`
	Kind      string            `json:"kind,omitempty"`
	Attempt   int               `json:"attempt"`
	Error     string            `json:"error,omitempty"`
	Processor string            `json:"processor,omitempty"`
	SourceID  string            `json:"source_message_id,omitempty"`
	SentAt    time.Time         `json:"dead_lettered_at"`
	Age       time.Duration     `json:"age_ns"`
	Body      string            `json:"body,omitempty"`
	Attrs     map[string]string `json:"attributes,omitempty"`

	info deadletter.Info
	msg  sqstypes.Message
}

// scanHold is how long a DLQ scan hides the messages it has seen, so that the
// next receive returns others; they are made visible again when the scan's
// user is done with them.
const scanHold = 5 * time.Minute

// holdDLQ receives every message in the DLQ, hiding each for hold. The
// caller releases (makes visible again) those it does not delete.
func (a *app) holdDLQ(ctx context.Context, hold time.Duration) ([]*DeadLetter, error) {
	seen := map[string]bool{}
	var out []*DeadLetter
	now := time.Now()
	for {
		res, err := a.clients.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(a.dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			VisibilityTimeout:           int32(hold / time.Second),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			a.release(context.WithoutCancel(ctx), out)
			return nil, fmt.Errorf("receive from %s: %w", a.dlqURL, err)
		}
		if len(res.Messages) == 0 {
			break
		}
		for _, m := range res.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				continue
			}
			seen[id] = true
			out = append(out, letterOf(m, now))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SentAt.Before(out[j].SentAt) })
	return out, nil
}

// peekDLQ is holdDLQ for reading only: everything is released at once.
func (a *app) peekDLQ(ctx context.Context) ([]*DeadLetter, error) {
	letters, err := a.holdDLQ(ctx, time.Minute)
	if err != nil {
		return nil, err
	}
	a.release(ctx, letters)
	return letters, nil
}

func letterOf(m sqstypes.Message, now time.Time) *DeadLetter {
	info := deadletter.Parse(m.MessageAttributes)
	l := &DeadLetter{
		ID: aws.ToString(m.MessageId), Reason: info.DisplayReason(), Key: info.Key, Kind: info.Kind, Attempt: info.Attempt,
		Error: info.Error, Processor: info.Processor, SourceID: info.MessageID, Age: deadletter.Age(m, now),
		info: info, msg: m,
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		l.SentAt = time.UnixMilli(ms).UTC()
	}
	return l
}

// release makes letters visible again (best effort: they reappear when their
// hold ends anyway).
func (a *app) release(ctx context.Context, letters []*DeadLetter) {
	for i := 0; i < len(letters); i += 10 {
		var entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry
		for j, l := range letters[i:min(i+10, len(letters))] {
			entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), ReceiptHandle: l.msg.ReceiptHandle, VisibilityTimeout: 0,
			})
		}
		_, _ = a.clients.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(a.dlqURL), Entries: entries})
	}
}

// selection filters dead letters.
type selection struct {
	key    string
	reason string
	since  time.Duration
	all    bool
	re     *regexp.Regexp
}

func (s *selection) compile() error {
	if s.reason == "" {
		return nil
	}
	re, err := regexp.Compile(s.reason)
	if err != nil {
		return exit(ExitUsage, "--reason %q: %w", s.reason, err)
	}
	s.re = re
	return nil
}

func (s *selection) match(l *DeadLetter) bool {
	switch {
	case s.key != "" && l.Key != s.key:
		return false
	case s.re != nil && !s.re.MatchString(l.Reason):
		return false
	case s.since > 0 && l.Age > s.since:
		return false
	}
	return true
}

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead letters",
		Long: `Every dead letter carries why it is there (wahook_reason): failed (the handler
failed for good; replayable), poison (not an envelope), ledger-expired (an envelope
older than the ledger's TTL with no item; not run), rejected (ingest could not
enqueue it: no id or too large; the body is the raw event), sqs-redrive (SQS moved it
after maxReceiveCount receives, without wahook's attributes).`,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqShowCmd(), a.dlqReplayCmd(), a.dlqPurgeCmd())
	return cmd
}

func (a *app) dlqListCmd() *cobra.Command {
	var sel selection
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: reason, key, kind, attempt, age",
		Example: `  wahook dlq list
  wahook dlq list --reason 'failed|poison' --since 24h -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sel.compile(); err != nil {
				return err
			}
			letters, err := a.peekDLQ(cmd.Context())
			if err != nil {
				return err
			}
			var shown []*DeadLetter
			for _, l := range letters {
				if sel.match(l) {
					shown = append(shown, l)
				}
			}
			if a.output == "json" {
				if shown == nil {
					shown = []*DeadLetter{}
				}
				return a.printJSON(shown)
			}
			rows := make([][]string, 0, len(shown))
			for _, l := range shown {
				rows = append(rows, []string{l.ID, l.Reason, orDash(l.Key), orDash(l.Kind), strconv.Itoa(l.Attempt), age(l.Age), clip(l.Error, 60)})
			}
			return a.table([]string{"ID", "REASON", "KEY", "KIND", "ATTEMPT", "AGE", "ERROR"}, rows)
		},
	}
	cmd.Flags().StringVar(&sel.reason, "reason", "", "only reasons matching this regular expression")
	cmd.Flags().DurationVar(&sel.since, "since", 0, "only dead letters younger than this (e.g. 24h)")
	return cmd
}

func (a *app) dlqShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter: its attributes and body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			letters, err := a.peekDLQ(cmd.Context())
			if err != nil {
				return err
			}
			for _, l := range letters {
				if l.ID != args[0] {
					continue
				}
				l.Body = aws.ToString(l.msg.Body)
				l.Attrs = map[string]string{}
				for name, v := range l.msg.MessageAttributes {
					l.Attrs[name] = aws.ToString(v.StringValue)
				}
				if a.output == "json" {
					return a.printJSON(l)
				}
				w := a.io.Out
				fmt.Fprintf(w, "id:         %s\nreason:     %s\nkey:        %s\nkind:       %s\nattempt:    %d\nprocessor:  %s\n"+
					"source id:  %s\ndead since: %s (%s ago)\nerror:      %s\n", l.ID, l.Reason, orDash(l.Key), orDash(l.Kind), l.Attempt,
					orDash(l.Processor), orDash(l.SourceID), stamp(l.SentAt), age(l.Age), orDash(l.Error))
				fmt.Fprintf(w, "attributes:\n")
				names := make([]string, 0, len(l.Attrs))
				for n := range l.Attrs {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(w, "  %s = %s\n", n, clip(l.Attrs[n], 200))
				}
				fmt.Fprintf(w, "body:\n%s\n", l.Body)
				return nil
			}
			return exit(ExitNotFound, "no dead letter with id %s", args[0])
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
