package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
)

// maxBatchGet is DynamoDB's limit of keys in one BatchGetItem call.
const maxBatchGet = 100

// Admission is what ingest does with one event key.
type Admission struct {
	// Receipt is set when this request owns the event and must send it.
	Receipt *Receipt
	// Duplicate is set when the event is known already; State says how far it got.
	Duplicate bool
	State     State
}

// ResendWindow is the age after which a `received` item that nobody renewed
// is taken over.
func (s *Store) ResendWindow() time.Duration { return s.opts.ResendWindow }

// Renew restamps r's `received` item (received_at = now) while it is still r's,
// so that no sibling request takes over an item whose owner is alive but slow.
// A request renews every item it owns and has not sent yet every ResendWindow/3.
// It reports false when the item has moved on (queued, claimed, taken over):
// nothing left to renew.
func (s *Store) Renew(ctx context.Context, r Receipt) (bool, error) {
	vals := receiptValues(r)
	vals[":now"] = num(s.opts.Now().UnixMilli())
	names := receiptNames()
	names["#received_at"] = AttrReceivedAt
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       s.key(r.Key),
		UpdateExpression:          aws.String("SET #received_at = :now"),
		ConditionExpression:       aws.String(receiptCondition),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if awserr.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("renew %s: %w", r.Key, err)
	}
	return true, nil
}

// Admit decides what ingest does with one event key; see Await.
func (s *Store) Admit(ctx context.Context, key string) (Admission, error) {
	r, err := s.Acquire(ctx, key)
	if err == nil {
		return Admission{Receipt: &r}, nil
	}
	if !errors.Is(err, ErrExists) {
		return Admission{}, err
	}
	adms, errs := s.Await(ctx, []Receipt{r}, nil)
	return adms[0], errs[0]
}

// Await decides the keys whose Acquire found an item already (tried holds the
// receipts those Acquire calls tried to write; a receipt with only its Key, for
// a key a Read found taken before any write was tried). It reads all of them together
// (consistent BatchGetItem) until each is decided:
//   - queued, processing, done or failed: a duplicate;
//   - `received` under a tried token: our own put landed and the SDK's retry
//     of it failed the condition — ours;
//   - `received` by a sibling request: wait, reading again, while the sibling
//     renews it; once its received_at is older than the resend window the
//     sibling crashed or stalled: TakeOver — ours;
//   - gone (the sibling released it): Acquire again.
//
// Keys still `received` by a sibling once InFlightWait has passed without any
// of the awaited keys moving on or being renewed get ErrInFlight: the caller
// answers so that Meta retries. A sibling that keeps queueing or renewing keeps
// the wait going (it ends with the sibling's own send and backend timeouts, or
// with ctx). Never a duplicate for a key a sibling still owns.
//
// owned, when not nil, is called as soon as a key becomes ours (before Await
// returns), so that the caller can send it while the others are still awaited.
// The results are in the order of tried.
func (s *Store) Await(ctx context.Context, tried []Receipt, owned func(i int, r Receipt)) ([]Admission, []error) {
	adms := make([]Admission, len(tried))
	errs := make([]error, len(tried))
	pending := make(map[string]int, len(tried)) // key → index in tried
	for i, r := range tried {
		pending[r.Key] = i
	}
	own := func(i int, r Receipt) {
		adms[i] = Admission{Receipt: &r}
		delete(pending, r.Key)
		if owned != nil {
			owned(i, r)
		}
	}
	progressed := s.opts.Now()
	wait := s.opts.PollInterval
	renewed := make(map[string]time.Time, len(tried)) // received_at last read, per key
	for len(pending) > 0 {
		items, err := s.readPending(ctx, pending)
		if err != nil {
			for _, i := range pending {
				errs[i] = fmt.Errorf("admit %s: %w", tried[i].Key, err)
			}
			break
		}
		now := s.opts.Now()
		moved := false
		for key, i := range pending {
			item, found := items[key]
			switch {
			case !found:
				// Released meanwhile: acquire it again.
				r, err := s.Acquire(ctx, key)
				switch {
				case err == nil:
					moved = true
					own(i, r)
				case errors.Is(err, ErrExists):
					tried[i] = r // another sibling got there first; await it
				default:
					errs[i] = fmt.Errorf("admit %s: %w", key, err)
					delete(pending, key)
				}
			case item.State != StateReceived:
				moved = true
				adms[i] = Admission{Duplicate: true, State: item.State}
				delete(pending, key)
			case tried[i].Token != "" && item.ReceiptToken == tried[i].Token:
				own(i, tried[i])
			case now.Sub(item.ReceivedAt) < s.opts.ResendWindow:
				// The sibling's; a renewal since the last read shows it alive.
				if last, ok := renewed[key]; ok && item.ReceivedAt.After(last) {
					moved = true
				}
				renewed[key] = item.ReceivedAt
			default:
				// Nobody renewed it for a whole window: its owner is gone.
				r, err := s.TakeOver(ctx, key, item.ReceivedAt.UnixMilli())
				switch {
				case err == nil:
					moved = true
					own(i, r)
				case errors.Is(err, ErrConflict):
					// Renewed, queued or taken by another sibling: read again.
				default:
					errs[i] = fmt.Errorf("admit %s: %w", key, err)
					delete(pending, key)
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		if moved {
			progressed, wait = now, s.opts.PollInterval
		}
		if now.Sub(progressed) >= s.opts.InFlightWait {
			for key, i := range pending {
				errs[i] = fmt.Errorf("admit %s: %w", key, ErrInFlight)
			}
			break
		}
		pause := min(wait, progressed.Add(s.opts.InFlightWait).Sub(now))
		wait = min(2*wait, 250*time.Millisecond)
		select {
		case <-ctx.Done():
			for key, i := range pending {
				errs[i] = fmt.Errorf("admit %s: %w", key, ctx.Err())
			}
			return adms, errs
		case <-time.After(pause):
		}
	}
	return adms, errs
}

// readPending reads the pending keys' items; see Read.
func (s *Store) readPending(ctx context.Context, pending map[string]int) (map[string]Item, error) {
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	return s.Read(ctx, keys)
}

// admissionNames are the attributes Read projects.
var admissionNames = map[string]string{"#k": AttrPK, "#s": AttrState, "#t": AttrReceiptToken, "#r": AttrReceivedAt}

// maxReadsInFlight bounds the BatchGetItem calls one Read has in flight.
const maxReadsInFlight = 8

// Read reads what admission needs of keys' items — Key, State, ReceiptToken
// and ReceivedAt, the other fields left zero — with consistent reads, up to
// 100 keys a BatchGetItem call and up to maxReadsInFlight calls at once. A key
// without an item is absent from the map. Keys DynamoDB leaves unprocessed
// (throttling) are asked for again after a short pause, until answered or ctx
// ends. The projection keeps a claimed or failed item's other attributes (its
// lease, tokens, history) out of the reply: a duplicate of a 1,000-update body
// reads every key of it at least once.
func (s *Store) Read(ctx context.Context, keys []string) (map[string]Item, error) {
	var (
		mu    sync.Mutex
		items = make(map[string]Item, len(keys))
		errs  []error
		wg    sync.WaitGroup
		slots = make(chan struct{}, maxReadsInFlight)
	)
	for chunk := range slices.Chunk(keys, maxBatchGet) {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			got, err := s.readChunk(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			maps.Copy(items, got)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return items, nil
}

// readChunk reads at most maxBatchGet keys' items.
func (s *Store) readChunk(ctx context.Context, chunk []string) (map[string]Item, error) {
	keys := make([]map[string]types.AttributeValue, len(chunk))
	for i, k := range chunk {
		keys[i] = s.key(k)
	}
	items := make(map[string]Item, len(keys))
	for len(keys) > 0 {
		out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
			RequestItems: map[string]types.KeysAndAttributes{
				s.table: {Keys: keys, ConsistentRead: aws.Bool(true),
					ProjectionExpression:     aws.String("#k, #s, #t, #r"),
					ExpressionAttributeNames: admissionNames},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("batch get %d keys: %w", len(keys), err)
		}
		for _, av := range out.Responses[s.table] {
			it := decodeItem(av)
			items[it.Key] = it
		}
		keys = nil
		if left, ok := out.UnprocessedKeys[s.table]; ok && len(left.Keys) > 0 {
			keys = left.Keys
			select { // throttled: back off a little before asking again
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(s.opts.PollInterval):
			}
		}
	}
	return items, nil
}
