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
			"#expires_at = :exp, #token = :token, #reopened_from = :fence, " + historyAppend + " REMOVE #done_at, #done_by"),
		ConditionExpression: aws.String("#state = :failed AND #done_by = :fence"),
		ExpressionAttributeNames: map[string]string{
			"#state": AttrState, "#owner": AttrOwner, "#lease_until": AttrLeaseUntil, "#series_start": AttrSeriesStart,
			"#attempt": AttrAttempt, "#reopens": AttrReopens, "#expires_at": AttrExpiresAt, "#token": AttrClaimToken,
			"#history": AttrHistory, "#done_at": AttrDoneAt, "#done_by": AttrDoneBy, "#reopened_from": AttrReopenedFrom,
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

// ErrNotReopenable: Requeue found the key neither failed by the fence's claim
// nor already requeued for it (it is done, or failed again by a later claim,
// or unknown): the dead letter is stale.
var ErrNotReopenable = errors.New("ledger: not failed by the dead letter's claim")

// Requeue is Reopen for an operator's replay: it moves a key `failed` by the
// claim fence names back to `queued` (a new series of attempts: the next
// claim is its first), so that the copy the operator sends next is claimed
// as any queued event. It reports already=true when the key was requeued or
// reopened for this fence before (a replay re-run after a crash between its
// steps): sending the copy again is then harmless. ErrNotReopenable (with
// the state) when the dead letter is stale.
func (s *Store) Requeue(ctx context.Context, key, fence string) (already bool, err error) {
	if fence == "" {
		return false, fmt.Errorf("requeue %s: empty fence", key)
	}
	now := s.opts.Now()
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table,
		Key:       s.key(key),
		UpdateExpression: aws.String("SET #state = :queued, #series_start = #attempt, #reopens = if_not_exists(#reopens, :zero) + :one, " +
			"#failures = :zero, #given_back = :zero, " +
			"#expires_at = :exp, #reopened_from = :fence, " + historyAppend + " REMOVE #done_at, #done_by, #owner, #lease_until"),
		ConditionExpression: aws.String("#state = :failed AND #done_by = :fence"),
		ExpressionAttributeNames: map[string]string{
			"#state": AttrState, "#series_start": AttrSeriesStart, "#attempt": AttrAttempt, "#reopens": AttrReopens,
			"#expires_at": AttrExpiresAt, "#reopened_from": AttrReopenedFrom, "#history": AttrHistory,
			"#done_at": AttrDoneAt, "#done_by": AttrDoneBy, "#owner": AttrOwner, "#lease_until": AttrLeaseUntil,
			"#failures": AttrFailures, "#given_back": AttrGivenBack,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":queued": str(string(StateQueued)),
			":failed": str(string(StateFailed)),
			":fence":  str(fence),
			":zero":   num(0),
			":one":    num(1),
			":exp":    s.expiresAt(now),
			":empty":  emptyList(),
			":entry":  historyValue(HistoryEntry{At: now, Event: HistoryReopened, By: "wahook dlq replay", Reason: "dead letter of " + fence + " replayed"}),
		},
	})
	if err == nil {
		return false, nil
	}
	if !awserr.ConditionFailed(err) {
		return false, fmt.Errorf("requeue %s: %w", key, err)
	}
	item, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("requeue %s: %w", key, err)
	}
	if item.ReopenedFrom == fence {
		return true, nil
	}
	return false, fmt.Errorf("requeue %s: %s: %w", key, item.State, ErrNotReopenable)
}
