package processor

// The writes that end one claim: give back or fail.

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
)

// giveBack returns the claim to the ledger and makes the message visible
// again after delay (at most 12 hours after receivedAt, SQS's limit). hb, the
// message's heartbeat (nil for none), is stopped once the ledger answered.
func (pr *processor) giveBack(ctx context.Context, claim ledger.Claim, hb *beats, receipt string, delay time.Duration, receivedAt time.Time,
	reason, result string, log *zap.Logger) {
	giveBack := pr.deps.Ledger.GiveBack
	if result == ResultRetry {
		giveBack = pr.deps.Ledger.Retry // a handler error: it counts toward MaxAttempts
	}
	err := pr.retryResult(ctx, "give back", func(ctx context.Context) error {
		return giveBack(ctx, claim, truncate(reason))
	})
	hb.stop()
	if pr.ledgerWriteFailed(err, "give back", log) {
		return
	}
	secs := int32(0)
	if delay > 0 {
		secs = visibilitySeconds(delay, time.Since(receivedAt), 1)
	}
	pr.setVisibility(ctx, receipt, secs, log)
	pr.result(result)
	log.Info("event given back", zap.String("result", result), zap.Int32("visible_in_s", secs))
}

// fail dead-letters the message, marks the event failed and deletes the
// message. The dead-letter send comes first: should the ledger write fail, a
// copy too many in the dead-letter queue beats none. hb, the message's
// heartbeat (nil for none), runs until the ledger answered.
func (pr *processor) fail(ctx context.Context, m sqstypes.Message, claim ledger.Claim, hb *beats, receivedAt time.Time, cause error, log *zap.Logger) {
	reason := truncate(cause.Error())
	info := deadletter.Info{Reason: deadletter.ReasonFailed, Error: reason, Attempt: claim.Attempt}
	if env, err := envelope.Decode([]byte(aws.ToString(m.Body))); err == nil {
		info.Key, info.Kind = env.Key, string(env.Kind)
	}
	if err := pr.deadLetter(ctx, m, info); err != nil {
		log.Error("dead-letter send failed; giving the event back to try again", zap.NamedError("cause", cause), zap.Error(err))
		pr.giveBack(ctx, claim, hb, aws.ToString(m.ReceiptHandle), backoff(claim.Attempt, pr.opts.RetryBase, pr.opts.RetryMax),
			receivedAt, "dead-letter send failed: "+err.Error(), ResultBackendError, log)
		return
	}
	err := pr.retryResult(ctx, "fail", func(ctx context.Context) error { return pr.deps.Ledger.Fail(ctx, claim, reason) })
	hb.stop()
	if pr.ledgerWriteFailed(err, "fail", log) {
		return
	}
	pr.result(ResultFailed)
	log.Error("event failed for good; dead-lettered", zap.Error(cause))
	pr.del.add(deletion{receipt: aws.ToString(m.ReceiptHandle), log: log, ctx: ctx})
}
