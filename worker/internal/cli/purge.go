package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"
)

func (a *app) dlqPurgeCmd() *cobra.Command {
	var olderThan time.Duration
	var olderSet, dryRun, yes bool
	cmd := &cobra.Command{
		Use:   "purge --older-than D",
		Short: "Delete dead letters older than D for good",
		Example: `  wahook dlq purge --older-than 336h --dry-run
  wahook dlq purge --older-than 72h --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !olderSet {
				return exit(ExitUsage, "purge needs --older-than (0s for every dead letter)")
			}
			return a.purge(cmd.Context(), olderThan, dryRun, yes)
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "only dead letters dead-lettered longer ago than this (e.g. 72h)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be deleted; delete nothing")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) { olderSet = cmd.Flags().Changed("older-than") }
	return cmd
}

func (a *app) purge(ctx context.Context, olderThan time.Duration, dryRun, yes bool) error {
	letters, err := a.holdDLQ(ctx, scanHold)
	if err != nil {
		return err
	}
	var chosen, rest []*DeadLetter
	for _, l := range letters {
		if l.Age > olderThan {
			chosen = append(chosen, l)
		} else {
			rest = append(rest, l)
		}
	}
	a.release(ctx, rest)
	var held []*DeadLetter
	defer func() { a.release(context.WithoutCancel(ctx), held) }()
	if dryRun {
		held = chosen
		outcomes := make([]Outcome, 0, len(chosen))
		for _, l := range chosen {
			outcomes = append(outcomes, Outcome{ID: l.ID, Key: l.Key, Reason: l.Reason, Outcome: OutcomeWouldPurge, Detail: age(l.Age) + " old"})
		}
		return a.printOutcomes(outcomes)
	}
	if len(chosen) > 0 {
		if err := a.confirm(yes, fmt.Sprintf("delete %d dead letter(s) older than %s for good?", len(chosen), olderThan)); err != nil {
			held = chosen
			return err
		}
	}
	bar := a.progress(len(chosen), "purging")
	outcomes := make([]Outcome, 0, len(chosen))
	failed := 0
	for _, l := range chosen {
		o := Outcome{ID: l.ID, Key: l.Key, Reason: l.Reason, Outcome: OutcomePurged}
		if _, err := a.clients.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(a.dlqURL), ReceiptHandle: l.msg.ReceiptHandle}); err != nil {
			o.Outcome, o.Detail = OutcomeFailed, err.Error()
			held = append(held, l)
			failed++
		}
		outcomes = append(outcomes, o)
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	if err := a.printOutcomes(outcomes); err != nil {
		return err
	}
	if failed > 0 {
		return exit(ExitPartial, "%d of %d dead letter(s) not deleted", failed, len(chosen))
	}
	return nil
}
