package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
)

// Outcomes of one dead letter in a replay or purge.
const (
	OutcomeReplayed      = "replayed"
	OutcomeWouldReplay   = "would replay"
	OutcomeSkipped       = "skipped"
	OutcomeFailed        = "failed"
	OutcomePurged        = "purged"
	OutcomeWouldPurge    = "would purge"
	progressBarThreshold = 20
)

// Outcome is what a replay or purge did with one dead letter.
type Outcome struct {
	ID      string `json:"id"`
	Key     string `json:"key,omitempty"`
	Reason  string `json:"reason"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

func (a *app) dlqReplayCmd() *cobra.Command {
	var sel selection
	var dryRun, yes bool
	cmd := &cobra.Command{
		Use:   "replay (--key KEY | --reason RE | --all)",
		Short: "Send dead letters back to the event queue to run again",
		Long: `replay sends the selected dead letters back to the event queue. For each one it
(1) reopens the event in the ledger when its reason is failed — failed back to
queued, fenced by the claim that failed it, as a new series of attempts — then
(2) sends the body to the event queue, then (3) deletes it from the DLQ. Each step
is safe to repeat, so a replay interrupted at any point is finished by running it
again: the event still runs once. A dead letter whose event moved on since (done,
or failed again by a later claim) is stale and skipped; poison, rejected and
ledger-expired dead letters are not replayable and are skipped (see dlq show).`,
		Example: `  wahook dlq replay --key msg#wamid.HBgL... --dry-run
  wahook dlq replay --reason failed --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{sel.key != "", sel.reason != "", sel.all} {
				if set {
					n++
				}
			}
			if n != 1 {
				return exit(ExitUsage, "replay needs exactly one of --key, --reason, --all")
			}
			if err := sel.compile(); err != nil {
				return err
			}
			return a.replay(cmd.Context(), sel, dryRun, yes)
		},
	}
	cmd.Flags().StringVar(&sel.key, "key", "", "the dead letters of this event key")
	cmd.Flags().StringVar(&sel.reason, "reason", "", "the dead letters whose reason matches this regular expression")
	cmd.Flags().BoolVar(&sel.all, "all", false, "every dead letter")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be replayed; change nothing")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) replay(ctx context.Context, sel selection, dryRun, yes bool) error {
	letters, err := a.holdDLQ(ctx, scanHold)
	if err != nil {
		return err
	}
	var chosen, rest []*DeadLetter
	for _, l := range letters {
		if sel.match(l) {
			chosen = append(chosen, l)
		} else {
			rest = append(rest, l)
		}
	}
	a.release(ctx, rest)
	var held []*DeadLetter // to release at the end: not deleted
	defer func() { a.release(context.WithoutCancel(ctx), held) }()
	if len(chosen) > 0 && !dryRun {
		if err := a.confirm(yes, fmt.Sprintf("replay %d dead letter(s) to %s?", len(chosen), a.queueURL)); err != nil {
			held = chosen
			return err
		}
	}
	bar := a.progress(len(chosen), "replaying")
	outcomes := make([]Outcome, 0, len(chosen))
	partial := 0
	for _, l := range chosen {
		o := a.replayOne(ctx, l, dryRun)
		if o.Outcome != OutcomeReplayed {
			held = append(held, l)
		}
		if o.Outcome == OutcomeSkipped || o.Outcome == OutcomeFailed {
			partial++
		}
		outcomes = append(outcomes, o)
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	if err := a.printOutcomes(outcomes); err != nil {
		return err
	}
	if partial > 0 {
		return exit(ExitPartial, "%d of %d selected dead letter(s) not replayed", partial, len(chosen))
	}
	return nil
}

// replayOne reopens, sends and deletes one dead letter, in that order: each
// step can be repeated, so a re-run after a crash between them finishes it.
func (a *app) replayOne(ctx context.Context, l *DeadLetter, dryRun bool) Outcome {
	o := Outcome{ID: l.ID, Key: l.Key, Reason: l.Reason}
	switch l.info.Reason {
	case deadletter.ReasonFailed:
		if l.info.Fence() == "" || l.Key == "" {
			o.Outcome, o.Detail = OutcomeSkipped, "failed, but its attributes do not name the claim that failed it"
			return o
		}
	case "": // moved by SQS after maxReceiveCount: the ledger still has it queued or processing
	default:
		o.Outcome, o.Detail = OutcomeSkipped, "not replayable: "+l.Reason
		return o
	}
	if dryRun {
		o.Outcome = OutcomeWouldReplay
		if it, err := a.ledger.Get(ctx, l.Key); err == nil {
			o.Detail = "ledger: " + string(it.State)
		}
		return o
	}
	if l.info.Reason == deadletter.ReasonFailed {
		already, err := a.ledger.Requeue(ctx, l.Key, l.info.Fence())
		switch {
		case errors.Is(err, ledger.ErrNotReopenable):
			o.Outcome, o.Detail = OutcomeSkipped, "stale: "+err.Error()
			return o
		case err != nil:
			o.Outcome, o.Detail = OutcomeFailed, err.Error()
			return o
		case already:
			o.Detail = "reopened before (an earlier replay); sending again is harmless"
		default:
			o.Detail = "reopened: a new series of attempts"
		}
	}
	if err := a.sendBack(ctx, l); err != nil {
		o.Outcome, o.Detail = OutcomeFailed, err.Error()
		return o
	}
	if _, err := a.clients.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(a.dlqURL), ReceiptHandle: l.msg.ReceiptHandle}); err != nil {
		o.Outcome, o.Detail = OutcomeFailed, fmt.Sprintf("sent, but not deleted from the DLQ (a re-run finishes it): %v", err)
		return o
	}
	o.Outcome = OutcomeReplayed
	return o
}

// sendBack sends l's body to the event queue with its original attributes
// (key, kind), not the dead-letter ones: the ledger has been reopened already.
func (a *app) sendBack(ctx context.Context, l *DeadLetter) error {
	attrs := map[string]sqstypes.MessageAttributeValue{}
	for name, v := range l.msg.MessageAttributes {
		if !deadletter.IsOurs(name) {
			attrs[name] = v
		}
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(a.queueURL), MessageBody: l.msg.Body, MessageAttributes: attrs}
	if strings.HasSuffix(a.queueURL, ".fifo") {
		group := "wahook-replay"
		if env, err := envelope.Decode([]byte(aws.ToString(l.msg.Body))); err == nil {
			group = env.GroupID()
		}
		sum := sha256.Sum256([]byte("replay:" + l.ID))
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(group), aws.String(hex.EncodeToString(sum[:]))
	}
	if _, err := a.clients.SQS.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send to %s: %w", a.queueURL, err)
	}
	return nil
}

func (a *app) printOutcomes(outcomes []Outcome) error {
	if a.output == "json" {
		return a.printJSON(outcomes)
	}
	if len(outcomes) == 0 {
		fmt.Fprintln(a.io.Out, "no dead letters match")
		return nil
	}
	rows := make([][]string, 0, len(outcomes))
	for _, o := range outcomes {
		rows = append(rows, []string{o.ID, o.Reason, orDash(o.Key), o.Outcome, clip(o.Detail, 80)})
	}
	return a.table([]string{"ID", "REASON", "KEY", "OUTCOME", "DETAIL"}, rows)
}

// progress is a progress bar on stderr for long runs on a terminal; a no-op
// bar otherwise.
func (a *app) progress(n int, what string) *progressbar.ProgressBar {
	if n < progressBarThreshold || !a.io.ErrTerminal {
		return progressbar.DefaultSilent(int64(n))
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(a.io.Err), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
}
