// Package ledger is the DynamoDB record of every event's life: one item per event
// key, moved between states only by conditional writes.
//
//	 Renew
//	  ┌─┐
//	  ▼ │
//	received ──MarkQueued──▶ queued ──Claim──▶ processing ──Complete──▶ done
//	   │  ▲   │                    ▲              │   ▲  │  ▲
//	Release TakeOver  MarkRejected  │  GiveBack/Retry ◀┘  │  │  └──────Reopen──────┐
//	   ▼          ▼                 │             Claim │  └──Fail──▶ failed ───┤
//	 (gone)    rejected ◀── Reject  │       (lease expired)                    │
//	                                └────────────────Requeue───────────────────┘
//
// Ingest acquires, renews while it still has to send, and queues; processors
// claim with a lease, extend it while their handler runs, and complete, fail or
// give back — each write fenced by owner and attempt so that at most one
// processor completes a key. See DESIGN.md.
//
// Every claim raises attempt (the fencing token). A claim's end is counted:
// Retry (a handler error) raises failures and given_back, GiveBack (shutdown)
// given_back only; a claim that ends with neither, nor Complete or Fail, was
// interrupted (attempt - series_start - 1 - given_back). The worker bounds
// failures by its maximum attempts and interruptions by a larger bound of
// their own, so a crash loop still ends, while shutdowns and lapsed leases
// never spend the attempts a handler gets.
//
// Lifetime (see lifetime.go): every write sets expires_at = now + TTL, and Claim
// creates an item for a key it has never seen only for an envelope younger than
// the TTL — an older one may name an event whose item has expired, and is
// refused with ErrExpired instead of being run a second time. Events ingest
// cannot enqueue are recorded `rejected` (MarkRejected, Reject).
//
// Reopen takes a `failed` key back to processing when an operator moves its
// dead-lettered copy back to the queue. It is fenced by done_by, the claim that
// failed the key as the copy recorded it, so two copies of one dead letter
// reopen it once. It starts a new series of attempts: series_start keeps the
// attempt count before it and failures and given_back start again from 0, so
// both of the worker's bounds apply afresh to the series; attempt keeps growing
// (it stays the fencing token). Requeue is the operator's form (wahook dlq
// replay): `failed` back to `queued`, with the same fence, before the CLI sends
// the copy back; both record the fence in reopened_from, so a replay re-run
// after a crash knows its own reopen.
package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
)

// State is where an event is in its life.
type State string

// The ledger's states.
const (
	StateReceived   State = "received"
	StateQueued     State = "queued"
	StateProcessing State = "processing"
	StateDone       State = "done"
	StateFailed     State = "failed"
	// StateRejected: ingest accepted the event but could not enqueue it (no
	// id, too large); the raw event is in the dead-letter queue.
	StateRejected State = "rejected"
)

// Attribute names of a ledger item.
const (
	AttrPK           = "pk"
	AttrState        = "state"
	AttrOwner        = "owner"
	AttrLeaseUntil   = "lease_until" // epoch ms
	AttrAttempt      = "attempt"
	AttrReceivedAt   = "received_at" // epoch ms
	AttrDoneAt       = "done_at"     // epoch ms
	AttrDoneBy       = "done_by"     // owner#attempt of the claim that completed or failed it
	AttrError        = "error"
	AttrExpiresAt    = "expires_at"    // epoch seconds, the table's TTL attribute
	AttrClaimToken   = "claim_token"   // random per Claim call: tells a landed retry from another claim
	AttrReceiptToken = "receipt_token" // random per Acquire/TakeOver call: whose `received` item this is
	AttrFailures     = "failures"      // claims of the series that ended in a handler error (Retry)
	AttrGivenBack    = "given_back"    // claims of the series that ended in a give-back (Retry or GiveBack)
	AttrSeriesStart  = "series_start"  // attempts before the current series began (set by Reopen)
	AttrReopens      = "reopens"       // how many times Reopen ran
	AttrHistory      = "history"       // list of HistoryEntry: failures, retries, reopens, rejection
	AttrReopenedFrom = "reopened_from" // the fence (done_by) of the failure the last Reopen/Requeue undid
)

// Errors callers decide on with errors.Is / errors.As.
var (
	// ErrExists: Acquire found an item for the key already.
	ErrExists = errors.New("ledger: item exists")
	// ErrNotFound: no item for the key.
	ErrNotFound = errors.New("ledger: item not found")
	// ErrLeaseLost: Extend, Complete, Fail, GiveBack or Retry found the claim no longer ours.
	ErrLeaseLost = errors.New("ledger: lease lost")
	// ErrConflict: a receipt-fenced write (TakeOver) lost to another writer.
	ErrConflict = errors.New("ledger: concurrent change")
	// ErrDuplicate: the event is already queued, processing, done or failed.
	ErrDuplicate = errors.New("ledger: duplicate event")
	// ErrInFlight: another ingest is enqueuing the event right now; ask again later.
	ErrInFlight = errors.New("ledger: event being enqueued by another request")
	// ErrOutcomeUnknown: a fenced write failed its condition and the read that
	// would tell whether the write had landed (an SDK retry) or the claim was
	// lost failed too. Nothing is known: the caller retries the write, which is
	// idempotent, rather than giving the event up as lost. The read's error is
	// wrapped beside it.
	ErrOutcomeUnknown = errors.New("ledger: outcome unknown")
	// ErrExpired: Claim found no item for an envelope older than the TTL; the
	// item may have existed and expired, so the event must not run again.
	ErrExpired = errors.New("ledger: no item for an envelope older than the item TTL")
)

// ClaimRefusedError says why Claim did not take the key.
type ClaimRefusedError struct {
	Key   string
	State State
	// Owner and LeaseUntil are set when another processor holds a live lease.
	Owner      string
	LeaseUntil time.Time
}

func (e *ClaimRefusedError) Error() string {
	if e.State == StateProcessing {
		return fmt.Sprintf("ledger: %s held by %s until %s", e.Key, e.Owner, e.LeaseUntil.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("ledger: %s already %s", e.Key, e.State)
}

// Finished reports whether the key needs no more work (done, failed or
// rejected): the message that led to the claim is a duplicate delivery.
func (e *ClaimRefusedError) Finished() bool {
	return e.State == StateDone || e.State == StateFailed || e.State == StateRejected
}

// Item is a ledger item as read.
type Item struct {
	Key          string
	State        State
	Owner        string
	LeaseUntil   time.Time
	Attempt      int
	ReceivedAt   time.Time
	DoneAt       time.Time
	DoneBy       string
	ClaimToken   string
	ReceiptToken string
	Error        string
	ExpiresAt    time.Time
	Failures     int
	GivenBack    int
	SeriesStart  int
	Reopens      int
	ReopenedFrom string
	History      []HistoryEntry
}

// Receipt proves which Acquire or TakeOver wrote the current `received` item, so
// that only its writer marks it queued, renews or releases it.
type Receipt struct {
	Key string
	// ReceivedAt is the stamp Acquire or TakeOver wrote (epoch ms); Renew moves
	// the stored one on, the receipt keeps the first.
	ReceivedAt int64
	// Token is random per Acquire or TakeOver call: the fence of every later
	// write by this receipt's holder.
	Token string
	// TakenOver is true when the item was taken over from a stale `received` item.
	TakenOver bool
}

// Claim is a processor's hold on a key.
type Claim struct {
	Key   string
	Owner string
	// Attempt is the fencing token: it grows with every claim of the key.
	Attempt    int
	LeaseUntil time.Time
	// Failures is how many earlier claims of the series ended in a handler
	// error; GivenBack how many ended in a give-back of any kind (handler
	// error or shutdown).
	Failures  int
	GivenBack int
	// SeriesStart is how many attempts came before the current series (0 until
	// the key is reopened).
	SeriesStart int
	// Reopened is set on the claim Reopen returns.
	Reopened bool
}

// Interrupted is how many earlier claims of the series ended without any
// result: their process crashed, their lease lapsed (a slow backend, a paused
// process), or their result write never landed. Completed and failed claims
// end the key's life (until a reopen starts a new series), so every earlier
// claim of the series either gave back or was interrupted.
func (c Claim) Interrupted() int { return max(c.SeriesAttempt()-1-c.GivenBack, 0) }

// SeriesAttempt is the attempt's number within its series: 1 for the first
// claim after ingest or after a Reopen.
func (c Claim) SeriesAttempt() int { return c.Attempt - c.SeriesStart }

// DB is the part of the DynamoDB client the ledger uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Options tunes a Store. Zero values mean the documented defaults.
type Options struct {
	// TTL is how long an item lives after its last write (default DefaultTTL).
	// It must outlive every message that can name the key: Meta's 7-day
	// retries and the queue's plus the DLQ's retention (CheckTTL).
	TTL time.Duration
	// ResendWindow is the age after which a `received` item is taken to belong to
	// a crashed ingest and is taken over (default 10s). It must be longer than
	// ingest's own SQS send timeout.
	ResendWindow time.Duration
	// InFlightWait is how long Await waits on sibling requests' `received` items
	// without any of them moving on (queued, released, taken over) or being
	// renewed before it answers ErrInFlight for the rest (default 5s; longer
	// than the siblings' renewal interval, ResendWindow/3). A sibling that keeps
	// queueing or renewing keeps the wait going; one that is stuck ends it.
	InFlightWait time.Duration
	// PollInterval is Await's first wait between reads of the `received` items
	// (default 25ms, doubling up to 250ms).
	PollInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is the DynamoDB ledger.
type Store struct {
	db    DB
	table string
	opts  Options
}

// New returns a Store over the given table.
func New(db DB, table string, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("ledger: nil DynamoDB client")
	}
	if table == "" {
		return nil, errors.New("ledger: empty table name")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.ResendWindow <= 0 {
		opts.ResendWindow = 10 * time.Second
	}
	if opts.InFlightWait <= 0 {
		opts.InFlightWait = 5 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 25 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{db: db, table: table, opts: opts}, nil
}

// Table is the table's name.
func (s *Store) Table() string { return s.table }

func (s *Store) key(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: str(k)}
}

func (s *Store) expiresAt(now time.Time) types.AttributeValue {
	return num(now.Add(s.opts.TTL).Unix())
}

// Acquire records a new event as `received`. ErrExists when the key has an item;
// the receipt returned with it, and with any other error, holds the stamp and
// token that were tried: a put that failed without an answer (a timeout) may
// still have landed, and Release with that receipt removes it if so.
func (s *Store) Acquire(ctx context.Context, key string) (Receipt, error) {
	now := s.opts.Now()
	r := Receipt{Key: key, ReceivedAt: now.UnixMilli(), Token: rand.Text()}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item: map[string]types.AttributeValue{
			AttrPK:           str(key),
			AttrState:        str(string(StateReceived)),
			AttrReceivedAt:   num(r.ReceivedAt),
			AttrReceiptToken: str(r.Token),
			AttrExpiresAt:    s.expiresAt(now),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK},
	})
	if awserr.ConditionFailed(err) {
		// r still carries the stamp this call tried to write: Admit uses it to
		// recognise an SDK retry whose first attempt landed.
		return r, fmt.Errorf("acquire %s: %w", key, ErrExists)
	}
	if err != nil {
		return r, fmt.Errorf("acquire %s: %w", key, err)
	}
	return r, nil
}

// receiptCondition fences a write to the `received` item r wrote. The token
// alone identifies the writer: Renew moves received_at, and a Renew whose reply
// was lost and that the SDK retries must still find the item its own.
const receiptCondition = "#state = :received AND #receipt_token = :token"

func receiptValues(r Receipt) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		":received": str(string(StateReceived)),
		":token":    str(r.Token),
	}
}

func receiptNames() map[string]string {
	return map[string]string{"#state": AttrState, "#receipt_token": AttrReceiptToken}
}

// MarkQueued moves r's item to `queued` after its SQS send succeeded. It reports
// false when the item had already moved on (a processor claimed it first, or a
// retry took it over): the event is in the queue either way, so that is no error.
func (s *Store) MarkQueued(ctx context.Context, r Receipt) (bool, error) {
	vals := receiptValues(r)
	vals[":queued"] = str(string(StateQueued))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       s.key(r.Key),
		UpdateExpression:          aws.String("SET #state = :queued"),
		ConditionExpression:       aws.String(receiptCondition),
		ExpressionAttributeNames:  receiptNames(),
		ExpressionAttributeValues: vals,
	})
	if awserr.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark queued %s: %w", r.Key, err)
	}
	return true, nil
}

// Release deletes r's item after its SQS send failed, so that Meta's retry
// acquires it afresh. It reports false when the item had moved on (a processor
// claimed it: the send did enqueue after all), which is no error.
func (s *Store) Release(ctx context.Context, r Receipt) (bool, error) {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       s.key(r.Key),
		ConditionExpression:       aws.String(receiptCondition),
		ExpressionAttributeNames:  receiptNames(),
		ExpressionAttributeValues: receiptValues(r),
	})
	if awserr.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s: %w", r.Key, err)
	}
	return true, nil
}

// TakeOver rewrites a stale `received` item (one whose writer crashed between its
// put and its send) as this request's own. seen is the received_at read from the
// item. ErrConflict when the item changed meanwhile.
func (s *Store) TakeOver(ctx context.Context, key string, seen int64) (Receipt, error) {
	now := s.opts.Now()
	// The new stamp must differ from the old so the crashed writer, should it wake,
	// can no longer mark or release the item.
	stamp := max(now.UnixMilli(), seen+1)
	token := rand.Text()
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item: map[string]types.AttributeValue{
			AttrPK:           str(key),
			AttrState:        str(string(StateReceived)),
			AttrReceivedAt:   num(stamp),
			AttrReceiptToken: str(token),
			AttrExpiresAt:    s.expiresAt(now),
		},
		ConditionExpression:       aws.String("#state = :received AND #received_at = :seen"),
		ExpressionAttributeNames:  map[string]string{"#state": AttrState, "#received_at": AttrReceivedAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":received": str(string(StateReceived)), ":seen": num(seen)},
	})
	if awserr.ConditionFailed(err) {
		return Receipt{}, fmt.Errorf("take over %s: %w", key, ErrConflict)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("take over %s: %w", key, err)
	}
	return Receipt{Key: key, ReceivedAt: stamp, Token: token, TakenOver: true}, nil
}

// Get reads the key's item. ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, key string) (Item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            s.key(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Item{}, fmt.Errorf("get %s: %w", key, err)
	}
	if out.Item == nil {
		return Item{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return decodeItem(out.Item), nil
}

// ProbeKey is the ledger item the worker's breaker writes to while it is open:
// not an event, so readers of the whole table skip it.
const ProbeKey = "wahook#breaker-probe"

// Probe makes one conditional write to ProbeKey's item, the same kind of call
// as every claim and result write. A read would not do: a table whose writes
// are throttled still answers reads, and a breaker closed on a read would let
// claims fail and burn receive counts into the dead-letter queue.
func (s *Store) Probe(ctx context.Context) error {
	now := s.opts.Now()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       s.key(ProbeKey),
		UpdateExpression:          aws.String("SET #probed_at = :now, #expires_at = :exp"),
		ConditionExpression:       aws.String("attribute_not_exists(#state)"),
		ExpressionAttributeNames:  map[string]string{"#probed_at": "probed_at", "#expires_at": AttrExpiresAt, "#state": AttrState},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.UnixMilli()), ":exp": s.expiresAt(now)},
	})
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// Claim takes the key for owner with a lease, when it is new to the ledger, not
// yet claimed, or held under an expired lease. The attempt grows with every claim.
// Otherwise a *ClaimRefusedError says who holds it or that it is finished.
//
// born is when ingest received the event (the envelope's received_at; zero when
// unknown). A key new to the ledger is created only when born is younger than
// the TTL: otherwise its item may have expired after the event was done, and
// Claim answers ErrExpired rather than run it again.
//
// token identifies this claim of one delivery: every retry of it, the SDK's or
// the caller's (after a timeout whose write may have landed), passes the same
// token, so that the ledger recognises its own landed write instead of refusing
// it as another owner's. Two deliveries of one key must use different tokens.
// An empty token gets a random one.
func (s *Store) Claim(ctx context.Context, key, owner, token string, lease time.Duration, born time.Time) (Claim, error) {
	if token == "" {
		token = rand.Text()
	}
	for range 3 {
		now := s.opts.Now()
		until := now.Add(lease)
		// A fresh envelope may create the item; an old one only finds it.
		fresh := born.IsZero() || now.Sub(born) < s.opts.TTL
		cond := "#state IN (:received, :queued) OR (#state = :processing AND #lease_until < :now)"
		names := map[string]string{
			"#state": AttrState, "#owner": AttrOwner, "#lease_until": AttrLeaseUntil,
			"#attempt": AttrAttempt, "#received_at": AttrReceivedAt, "#expires_at": AttrExpiresAt,
			"#token": AttrClaimToken,
		}
		if fresh {
			cond = "attribute_not_exists(#pk) OR " + cond
			names["#pk"] = AttrPK
		}
		out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table,
			Key:       s.key(key),
			UpdateExpression: aws.String("SET #state = :processing, #owner = :me, #lease_until = :until, " +
				"#attempt = if_not_exists(#attempt, :zero) + :one, #received_at = if_not_exists(#received_at, :now), " +
				"#expires_at = :exp, #token = :token"),
			ConditionExpression:      aws.String(cond),
			ExpressionAttributeNames: names,
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":processing": str(string(StateProcessing)),
				":received":   str(string(StateReceived)),
				":queued":     str(string(StateQueued)),
				":me":         str(owner),
				":until":      num(until.UnixMilli()),
				":now":        num(now.UnixMilli()),
				":zero":       num(0),
				":one":        num(1),
				":exp":        s.expiresAt(now),
				":token":      str(token),
			},
			ReturnValues: types.ReturnValueAllNew,
		})
		if err == nil {
			return claimOf(decodeItem(out.Attributes), owner, until), nil
		}
		if !awserr.ConditionFailed(err) {
			return Claim{}, fmt.Errorf("claim %s: %w", key, err)
		}
		item, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			if !fresh {
				return Claim{}, fmt.Errorf("claim %s (received %s): %w", key, born.UTC().Format(time.RFC3339), ErrExpired)
			}
			continue // deleted between the write and the read: try again
		}
		if err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", key, err)
		}
		if item.State == StateProcessing && item.ClaimToken == token {
			// Our own update landed and the SDK's retry of it failed the condition.
			return claimOf(item, owner, until), nil
		}
		switch item.State {
		case StateDone, StateFailed, StateRejected:
			return Claim{}, fmt.Errorf("claim %s: %w", key, &ClaimRefusedError{Key: key, State: item.State})
		case StateProcessing:
			if item.LeaseUntil.After(s.opts.Now()) {
				return Claim{}, fmt.Errorf("claim %s: %w", key, &ClaimRefusedError{
					Key: key, State: item.State, Owner: item.Owner, LeaseUntil: item.LeaseUntil,
				})
			}
		}
		// The item changed between the write and the read (a lease just expired,
		// a give-back): try again.
	}
	return Claim{}, fmt.Errorf("claim %s: %w", key, ErrConflict)
}

func claimOf(it Item, owner string, until time.Time) Claim {
	return Claim{Key: it.Key, Owner: owner, Attempt: it.Attempt, LeaseUntil: until, Failures: it.Failures, GivenBack: it.GivenBack,
		SeriesStart: it.SeriesStart}
}

// ownedCondition fences a processor's write to the claim it holds.
const ownedCondition = "#state = :processing AND #owner = :me AND #attempt = :attempt"

// owned runs a write fenced by c. landed recognises, after a failed condition,
// that the write is in place already: the SDK retried a request whose first
// attempt had landed. When the read that decides it fails, the outcome is
// ErrOutcomeUnknown, never ErrLeaseLost.
func (s *Store) owned(ctx context.Context, op string, c Claim, update string, names map[string]string, vals map[string]types.AttributeValue, landed func(Item) bool) error {
	names["#state"], names["#owner"], names["#attempt"] = AttrState, AttrOwner, AttrAttempt
	vals[":processing"], vals[":me"], vals[":attempt"] = str(string(StateProcessing)), str(c.Owner), num(int64(c.Attempt))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       s.key(c.Key),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(ownedCondition),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if awserr.ConditionFailed(err) {
		item, gerr := s.Get(ctx, c.Key)
		switch {
		case errors.Is(gerr, ErrNotFound):
			// No item, so no claim of ours: lost.
		case gerr != nil:
			// Only the read can tell a landed retry from a lost claim; without
			// it, "lost" would abandon an event that may well be ours.
			return fmt.Errorf("%s %s: %w: %w", op, c.Key, ErrOutcomeUnknown, gerr)
		case landed(item):
			return nil
		}
		return fmt.Errorf("%s %s: %w", op, c.Key, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, c.Key, err)
	}
	return nil
}

// finisher is the done_by value that proves which claim finished a key.
func finisher(c Claim) string { return DoneBy(c.Owner, c.Attempt) }

// DoneBy is the done_by value of the claim by owner at attempt that completed
// or failed a key; a dead-lettered copy records it so that Reopen is fenced.
func DoneBy(owner string, attempt int) string { return owner + "#" + strconv.Itoa(attempt) }

// Extend renews c's lease. ErrLeaseLost when the claim is no longer c's.
func (s *Store) Extend(ctx context.Context, c *Claim, lease time.Duration) error {
	until := s.opts.Now().Add(lease)
	err := s.owned(ctx, "extend", *c, "SET #lease_until = :until",
		map[string]string{"#lease_until": AttrLeaseUntil},
		map[string]types.AttributeValue{":until": num(until.UnixMilli())},
		func(it Item) bool {
			return it.State == StateProcessing && it.Owner == c.Owner && it.Attempt == c.Attempt &&
				it.LeaseUntil.UnixMilli() == until.UnixMilli()
		})
	if err == nil {
		c.LeaseUntil = until
	}
	return err
}

// Complete marks c's key done. ErrLeaseLost when the claim is no longer c's.
func (s *Store) Complete(ctx context.Context, c Claim) error {
	now := s.opts.Now()
	return s.owned(ctx, "complete", c,
		"SET #state = :done, #done_at = :now, #done_by = :by, #expires_at = :exp REMOVE #owner, #lease_until",
		map[string]string{"#done_at": AttrDoneAt, "#done_by": AttrDoneBy, "#expires_at": AttrExpiresAt, "#lease_until": AttrLeaseUntil},
		map[string]types.AttributeValue{":done": str(string(StateDone)), ":now": num(now.UnixMilli()), ":by": str(finisher(c)), ":exp": s.expiresAt(now)},
		func(it Item) bool { return it.State == StateDone && it.DoneBy == finisher(c) })
}

// Fail marks c's key failed for good, keeping the reason.
func (s *Store) Fail(ctx context.Context, c Claim, reason string) error {
	now := s.opts.Now()
	return s.owned(ctx, "fail", c,
		"SET #state = :failed, #done_at = :now, #done_by = :by, #error = :reason, #expires_at = :exp, "+historyAppend+" REMOVE #owner, #lease_until",
		map[string]string{"#done_at": AttrDoneAt, "#done_by": AttrDoneBy, "#error": AttrError, "#expires_at": AttrExpiresAt, "#lease_until": AttrLeaseUntil,
			"#history": AttrHistory},
		map[string]types.AttributeValue{":failed": str(string(StateFailed)), ":now": num(now.UnixMilli()), ":by": str(finisher(c)),
			":reason": str(reason), ":exp": s.expiresAt(now), ":empty": emptyList(),
			":entry": historyValue(HistoryEntry{At: now, Event: HistoryFailed, Attempt: c.Attempt, By: c.Owner, Reason: reason})},
		func(it Item) bool { return it.State == StateFailed && it.DoneBy == finisher(c) })
}

// GiveBack returns c's key to `queued` so any processor may claim it at once:
// the claim ended without running the handler to a result (shutdown), so it
// counts toward no limit.
func (s *Store) GiveBack(ctx context.Context, c Claim, reason string) error {
	return s.giveBack(ctx, "give back", c, reason, false)
}

// Retry is GiveBack after a handler error: it counts toward the key's
// handler failures (Claim.Failures), which the worker bounds by its maximum
// attempts.
func (s *Store) Retry(ctx context.Context, c Claim, reason string) error {
	return s.giveBack(ctx, "retry", c, reason, true)
}

func (s *Store) giveBack(ctx context.Context, op string, c Claim, reason string, failed bool) error {
	update := "SET #state = :queued"
	names := map[string]string{"#lease_until": AttrLeaseUntil, "#given_back": AttrGivenBack}
	vals := map[string]types.AttributeValue{":queued": str(string(StateQueued)), ":one": num(1)}
	if reason != "" {
		update += ", #error = :reason, " + historyAppend
		names["#error"], names["#history"] = AttrError, AttrHistory
		vals[":reason"], vals[":empty"] = str(reason), emptyList()
		event := HistoryGivenBack
		if failed {
			event = HistoryRetry
		}
		vals[":entry"] = historyValue(HistoryEntry{At: s.opts.Now(), Event: event, Attempt: c.Attempt, By: c.Owner, Reason: reason})
	}
	update += " REMOVE #owner, #lease_until ADD #given_back :one"
	if failed {
		update += ", #failures :one"
		names["#failures"] = AttrFailures
	}
	// Only this claim's owner moves an item of its attempt back to queued, and
	// any later claim raises the attempt: queued at our attempt is our landed
	// give-back (counted once: the retry that found it failed its condition).
	return s.owned(ctx, op, c, update, names, vals,
		func(it Item) bool { return it.State == StateQueued && it.Attempt == c.Attempt })
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func decodeItem(av map[string]types.AttributeValue) Item {
	return Item{
		Key:          getS(av, AttrPK),
		State:        State(getS(av, AttrState)),
		Owner:        getS(av, AttrOwner),
		LeaseUntil:   msTime(getN(av, AttrLeaseUntil)),
		Attempt:      int(getN(av, AttrAttempt)),
		ReceivedAt:   msTime(getN(av, AttrReceivedAt)),
		DoneAt:       msTime(getN(av, AttrDoneAt)),
		DoneBy:       getS(av, AttrDoneBy),
		ClaimToken:   getS(av, AttrClaimToken),
		ReceiptToken: getS(av, AttrReceiptToken),
		Error:        getS(av, AttrError),
		ExpiresAt:    secTime(getN(av, AttrExpiresAt)),
		Failures:     int(getN(av, AttrFailures)),
		GivenBack:    int(getN(av, AttrGivenBack)),
		SeriesStart:  int(getN(av, AttrSeriesStart)),
		Reopens:      int(getN(av, AttrReopens)),
		ReopenedFrom: getS(av, AttrReopenedFrom),
		History:      decodeHistory(av[AttrHistory]),
	}
}

func getS(av map[string]types.AttributeValue, name string) string {
	if v, ok := av[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(av map[string]types.AttributeValue, name string) int64 {
	if v, ok := av[name].(*types.AttributeValueMemberN); ok {
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err == nil {
			return n
		}
	}
	return 0
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func secTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}
