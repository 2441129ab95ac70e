package ledger

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// History events: what an item's history list records. The happy path adds
// nothing (its four writes stay small); failures, retries, reopens and
// rejections each add one entry.
const (
	HistoryRetry     = "retry"      // Retry: a retryable handler error
	HistoryGivenBack = "given_back" // GiveBack with a reason: a shutdown
	HistoryFailed    = "failed"     // Fail
	HistoryReopened  = "reopened"   // Reopen: an operator moved the dead letter back
	HistoryRejected  = "rejected"   // MarkRejected or Reject at ingest
)

// historyAppend is the update clause that appends :entry to the history.
const historyAppend = "#history = list_append(if_not_exists(#history, :empty), :entry)"

// HistoryEntry is one step in an item's history.
type HistoryEntry struct {
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
	Attempt int       `json:"attempt,omitempty"`
	By      string    `json:"by,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

func emptyList() types.AttributeValue {
	return &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
}

// historyValue is a one-entry list to append.
func historyValue(e HistoryEntry) types.AttributeValue {
	m := map[string]types.AttributeValue{"at": num(e.At.UnixMilli()), "event": str(e.Event), "attempt": num(int64(e.Attempt))}
	if e.By != "" {
		m["by"] = str(e.By)
	}
	if e.Reason != "" {
		m["reason"] = str(e.Reason)
	}
	return &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: m}}}
}

func decodeHistory(av types.AttributeValue) []HistoryEntry {
	l, ok := av.(*types.AttributeValueMemberL)
	if !ok {
		return nil
	}
	out := make([]HistoryEntry, 0, len(l.Value))
	for _, v := range l.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		out = append(out, HistoryEntry{
			At: msTime(getN(m.Value, "at")), Event: getS(m.Value, "event"), Attempt: int(getN(m.Value, "attempt")),
			By: getS(m.Value, "by"), Reason: getS(m.Value, "reason"),
		})
	}
	return out
}
