package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
)

// Reopen takes a `failed` key back to `processing` for owner, as Claim does,
// when an operator moved its dead-lettered copy back to the queue. fence is
// the done_by the copy recorded (DoneBy of the claim that failed the key):
// only the failure that copy belongs to can be reopened, and only once — a
// second copy of the same dead letter then finds the key processing or done
// and is refused like any duplicate (a *ClaimRefusedError).
//
// The reopened claim starts a new series of attempts: series_start is set to
// the attempts so far, so Claim.SeriesAttempt is 1, while Attempt keeps
// growing as the fencing token. token is as for Claim.
func (s *Store) Reopen(ctx context.Context, key, owner, token string, lease time.Duration, fence string) (Claim, error) {
	if fence == "" {
		return Claim{}, fmt.Errorf("reopen %s: empty fence", key)
	}
	if token == "" {
		token = rand.Text()
	}
	now := s.opts.Now()
	until := now.Add(lease)
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table,
		Key:       s.key(key),
		// Right-hand sides read the item before the update: series_start gets
		// the old attempt.
		UpdateExpression: aws.String("SET #state = :processing, #owner = :me, #lease_until = :until, " +
			"#series_start = #attempt, #attempt = #attempt + :one, #reopens = if_not_exists(#reopens, :zero) + :one, " +
			"#failures = :zero, #given_back = :zero, " +
			"#expires_at = :exp, #token = :token, " + historyAppend + " REMOVE #done_at, #done_by"),
		ConditionExpression: aws.String("#state = :failed AND #done_by = :fence"),
		ExpressionAttributeNames: map[string]string{
			"#state": AttrState, "#owner": AttrOwner, "#lease_until": AttrLeaseUntil, "#series_start": AttrSeriesStart,
			"#attempt": AttrAttempt, "#reopens": AttrReopens, "#expires_at": AttrExpiresAt, "#token": AttrClaimToken,
			"#history": AttrHistory, "#done_at": AttrDoneAt, "#done_by": AttrDoneBy,
			"#failures": AttrFailures, "#given_back": AttrGivenBack,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":processing": str(string(StateProcessing)),
			":failed":     str(string(StateFailed)),
			":fence":      str(fence),
			":me":         str(owner),
			":until":      num(until.UnixMilli()),
			":zero":       num(0),
			":one":        num(1),
			":exp":        s.expiresAt(now),
			":token":      str(token),
			":empty":      emptyList(),
			":entry":      historyValue(HistoryEntry{At: now, Event: HistoryReopened, By: owner, Reason: "dead letter of " + fence + " moved back"}),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err == nil {
		c := claimOf(decodeItem(out.Attributes), owner, until)
		c.Reopened = true
		return c, nil
	}
	if !awserr.ConditionFailed(err) {
		return Claim{}, fmt.Errorf("reopen %s: %w", key, err)
	}
	item, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return Claim{}, fmt.Errorf("reopen %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("reopen %s: %w", key, err)
	}
	if item.State == StateProcessing && item.ClaimToken == token {
		// Our own update landed and the SDK's retry of it failed the condition.
		c := claimOf(item, owner, until)
		c.Reopened = true
		return c, nil
	}
	return Claim{}, fmt.Errorf("reopen %s (fence %s): %w", key, fence, &ClaimRefusedError{
		Key: key, State: item.State, Owner: item.Owner, LeaseUntil: item.LeaseUntil,
	})
}
