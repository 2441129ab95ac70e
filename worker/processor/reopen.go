package processor

// The claim of one delivery, and the reopen of a failed event whose dead
// letter an operator moved back to the queue.

import (
	"context"
	"errors"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
)

// claim claims env's key for this delivery of m. A key the ledger has as
// `failed` is reopened — a new series of attempts — only when m is the dead
// letter of that very failure moved back to the queue (SQS's redrive or the
// CLI): its attributes name the claim that failed it, which fences the
// reopen, so that two copies of one dead letter run the event once. Any other
// delivery of a failed key is a duplicate.
func (pr *processor) claim(hard context.Context, m sqstypes.Message, env envelope.Envelope, token string, log *zap.Logger) (ledger.Claim, error) {
	var c ledger.Claim
	err := pr.retry(hard, "claim", true, func(ctx context.Context) error {
		var err error
		c, err = pr.deps.Ledger.Claim(ctx, env.Key, pr.id, token, pr.opts.LeaseDuration, env.ReceivedAt)
		return err
	})
	var refused *ledger.ClaimRefusedError
	if !errors.As(err, &refused) || refused.State != ledger.StateFailed {
		return c, err
	}
	fence := deadletter.Parse(m.MessageAttributes).Fence()
	if fence == "" {
		return c, err
	}
	err = pr.retry(hard, "reopen", true, func(ctx context.Context) error {
		var err error
		c, err = pr.deps.Ledger.Reopen(ctx, env.Key, pr.id, token, pr.opts.LeaseDuration, fence)
		return err
	})
	if err == nil {
		pr.metrics.reopened.Inc()
		log.Warn("failed event reopened: its dead letter was moved back; a new series of attempts begins",
			zap.String("fence", fence), zap.Int("attempt", c.Attempt))
	}
	return c, err
}
