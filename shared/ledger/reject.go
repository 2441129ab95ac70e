package ledger

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
)

// MarkRejected records r's event as `rejected` for good: ingest admitted it but
// no queue message can carry it (larger than the queue's MaximumMessageSize).
// Its raw event is in the DLQ; Meta's retries of it are then duplicates. It
// reports false when the item had moved on (taken over by a retry), which is
// no error: that retry records it.
func (s *Store) MarkRejected(ctx context.Context, r Receipt, reason string) (bool, error) {
	now := s.opts.Now()
	vals := receiptValues(r)
	vals[":rejected"], vals[":reason"], vals[":now"], vals[":exp"] = str(string(StateRejected)), str(reason), num(now.UnixMilli()), s.expiresAt(now)
	vals[":empty"], vals[":entry"] = emptyList(), historyValue(HistoryEntry{At: now, Event: HistoryRejected, Reason: reason})
	names := map[string]string{"#error": AttrError, "#done_at": AttrDoneAt, "#expires_at": AttrExpiresAt, "#history": AttrHistory}
	for k, v := range receiptNames() {
		names[k] = v
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       s.key(r.Key),
		UpdateExpression:          aws.String("SET #state = :rejected, #error = :reason, #done_at = :now, #expires_at = :exp, " + historyAppend),
		ConditionExpression:       aws.String(receiptCondition),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if awserr.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark rejected %s: %w", r.Key, err)
	}
	return true, nil
}

// Reject records an event that has no key of its own (no id) as `rejected`
// under key (a hash of its raw JSON). It reports false when the key was
// recorded already: a duplicate delivery of the same raw event.
func (s *Store) Reject(ctx context.Context, key, reason string) (bool, error) {
	now := s.opts.Now()
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item: map[string]types.AttributeValue{
			AttrPK:         str(key),
			AttrState:      str(string(StateRejected)),
			AttrReceivedAt: num(now.UnixMilli()),
			AttrDoneAt:     num(now.UnixMilli()),
			AttrError:      str(reason),
			AttrExpiresAt:  s.expiresAt(now),
			AttrHistory:    historyValue(HistoryEntry{At: now, Event: HistoryRejected, Reason: reason}),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK},
	})
	if awserr.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reject %s: %w", key, err)
	}
	return true, nil
}
