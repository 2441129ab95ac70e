package ledger

import (
	"fmt"
	"time"
)

// MetaRetryWindow is how long Meta retries a webhook it could not deliver.
const MetaRetryWindow = 7 * 24 * time.Hour

// DefaultTTL is the item lifetime when none is configured: Meta's retry window
// is 7 days and the queue and the DLQ each keep messages 14 days (SQS's
// maximum, what shared/resources and the ECS stack create), so an item must
// live 28 days to outlive every message that can still name its key.
const DefaultTTL = 28 * 24 * time.Hour

// MinTTL is the shortest item TTL that outlives every message that can name a
// key: Meta's retries, and a message that spends the queue's whole retention
// in the queue and then the DLQ's whole retention in the DLQ before an
// operator moves it back.
func MinTTL(queueRetention, dlqRetention time.Duration) time.Duration {
	return max(MetaRetryWindow, queueRetention+dlqRetention)
}

// CheckTTL refuses a TTL shorter than MinTTL: an item could then expire while
// a message naming its key still exists, and that message would run again.
func CheckTTL(ttl, queueRetention, dlqRetention time.Duration) error {
	if need := MinTTL(queueRetention, dlqRetention); ttl < need {
		return fmt.Errorf("WAHOOK_ITEM_TTL %s is shorter than %s = max(Meta's 7-day retries %s, "+
			"queue retention %s + dead-letter queue retention %s): an expired item would let an old message run again",
			ttl, need, MetaRetryWindow, queueRetention, dlqRetention)
	}
	return nil
}
