package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/spf13/cobra"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
)

// statusNames are the delivery statuses whose keys `event WAMID` looks up.
var statusNames = []string{"sent", "delivered", "read", "played", "failed", "deleted"}

// EventReport is what `wahook event` reports.
type EventReport struct {
	Items   []ledger.Item  `json:"ledger_items"`
	Message map[string]any `json:"message_row,omitempty"`
}

func (a *app) eventCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "event KEY|WAMID",
		Short: "One event's ledger item, its attempts, failures and reopens, and its stored message row",
		Long: `event reads the ledger item of an event key (msg#<wamid>, status#<wamid>#<status>,
rejected#<hash>) or, given a bare wamid, of the message and every status of it,
and the messages table's row for the wamid.`,
		Example: `  wahook event msg#wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTg
  wahook event wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTg -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := a.event(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(rep.Items) == 0 && rep.Message == nil {
				return exit(ExitNotFound, "no ledger item and no message row for %s", args[0])
			}
			if a.output == "json" {
				return a.printJSON(rep)
			}
			a.printEvent(rep)
			return nil
		},
	}
}

func (a *app) event(ctx context.Context, arg string) (EventReport, error) {
	var rep EventReport
	keys, wamid := []string{arg}, ""
	if !strings.Contains(arg, "#") {
		wamid = arg
		keys = []string{webhook.MessageKey(arg)}
		for _, s := range statusNames {
			keys = append(keys, webhook.StatusKey(arg, s))
		}
	} else if rest, ok := strings.CutPrefix(arg, "msg#"); ok {
		wamid = rest
	} else if rest, ok := strings.CutPrefix(arg, "status#"); ok {
		wamid, _, _ = strings.Cut(rest, "#")
	}
	for _, k := range keys {
		it, err := a.ledger.Get(ctx, k)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return EventReport{}, err
		}
		rep.Items = append(rep.Items, it)
	}
	if wamid != "" && a.cfg.MessagesTable != "" {
		out, err := a.clients.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(a.cfg.MessagesTable),
			Key:       map[string]dbtypes.AttributeValue{resources.MessagesKey: &dbtypes.AttributeValueMemberS{Value: wamid}},
		})
		if err != nil {
			return EventReport{}, fmt.Errorf("messages row %s: %w", wamid, err)
		}
		if out.Item != nil {
			if err := attributevalue.UnmarshalMapWithOptions(out.Item, &rep.Message, useNumber); err != nil {
				return EventReport{}, fmt.Errorf("messages row %s: %w", wamid, err)
			}
		}
	}
	return rep, nil
}

func (a *app) printEvent(rep EventReport) {
	w := a.io.Out
	for _, it := range rep.Items {
		fmt.Fprintf(w, "%s\n  state:        %s\n  attempt:      %d (this series: %d; reopened %d times)\n", it.Key, it.State,
			it.Attempt, it.Attempt-it.SeriesStart, it.Reopens)
		fmt.Fprintf(w, "  received at:  %s\n", stamp(it.ReceivedAt))
		if !it.DoneAt.IsZero() {
			fmt.Fprintf(w, "  finished at:  %s by %s\n", stamp(it.DoneAt), orDash(it.DoneBy))
		}
		if it.State == ledger.StateProcessing {
			fmt.Fprintf(w, "  held by:      %s until %s\n", it.Owner, stamp(it.LeaseUntil))
		}
		if it.Error != "" {
			fmt.Fprintf(w, "  last error:   %s\n", it.Error)
		}
		fmt.Fprintf(w, "  expires at:   %s\n", stamp(it.ExpiresAt))
		if len(it.History) > 0 {
			fmt.Fprintf(w, "  history:\n")
			for _, h := range it.History {
				line := fmt.Sprintf("    %s  %-9s", stamp(h.At), h.Event)
				if h.Attempt > 0 {
					line += fmt.Sprintf(" attempt %d", h.Attempt)
				}
				if h.By != "" {
					line += " by " + h.By
				}
				if h.Reason != "" {
					line += ": " + clip(h.Reason, 160)
				}
				fmt.Fprintln(w, line)
			}
		}
	}
	if rep.Message != nil {
		fmt.Fprintf(w, "message row:\n")
		for _, k := range sortedKeys(rep.Message) {
			fmt.Fprintf(w, "  %s: %v\n", k, rep.Message[k])
		}
	}
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// useNumber keeps numbers as written (a Meta timestamp, not 1.7645e+09).
func useNumber(o *attributevalue.DecoderOptions) { o.UseNumber = true }
