package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

// Audit table attributes (the worker's audit handler).
const (
	AuditKey         = "pk"
	AuditInvocations = "invocations"
	AuditAttempts    = "attempts"
	AuditCancelled   = "cancelled"
	AuditRuns        = "runs"
)

// Item is a raw DynamoDB item.
type Item = map[string]dbtypes.AttributeValue

// Scan reads a whole table with consistent reads (tests only: never on a hot path).
func Scan(ctx context.Context, db *dynamodb.Client, table string) ([]Item, error) {
	var out []Item
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

// LedgerItem is a ledger item as the tests read it.
type LedgerItem struct {
	Key        string
	State      ledger.State
	Owner      string
	LeaseUntil time.Time
	Attempt    int
	ReceivedAt time.Time
	DoneAt     time.Time
	DoneBy     string // owner#attempt of the claim that completed or failed it
	Error      string
}

// Ledger reads every event's ledger item, by key.
func (s *Stack) Ledger(ctx context.Context) (map[string]LedgerItem, error) {
	items, err := Scan(ctx, s.Suite.Clients.DynamoDB, s.LedgerTable)
	if err != nil {
		return nil, err
	}
	out := make(map[string]LedgerItem, len(items))
	for _, it := range items {
		if S(it, ledger.AttrPK) == ledger.ProbeKey {
			continue // the worker breaker's probe item, not an event
		}
		li := LedgerItem{
			Key:        S(it, ledger.AttrPK),
			State:      ledger.State(S(it, ledger.AttrState)),
			Owner:      S(it, ledger.AttrOwner),
			LeaseUntil: msTime(N(it, ledger.AttrLeaseUntil)),
			Attempt:    int(N(it, ledger.AttrAttempt)),
			ReceivedAt: msTime(N(it, ledger.AttrReceivedAt)),
			DoneAt:     msTime(N(it, ledger.AttrDoneAt)),
			DoneBy:     S(it, ledger.AttrDoneBy),
			Error:      S(it, ledger.AttrError),
		}
		out[li.Key] = li
	}
	return out, nil
}

// AuditItem is what the audit handler recorded for a key.
type AuditItem struct {
	Key         string
	Invocations int
	// Attempts maps the attempt (fencing token) of each invocation to the
	// processor that ran it.
	Attempts map[int]string
	// Cancelled maps an attempt to when its context cut the handler's delay.
	Cancelled map[int]time.Time
	// Runs are the handler's invocations, one per run however often the
	// SDK retried its write (Invocations, an ADD, counts retried writes
	// twice), in the order they began.
	Runs []AuditRun
}

// AuditRun is one invocation of the audit handler.
type AuditRun struct {
	Attempt   int
	Processor string
	Started   time.Time // the worker's clock
}

// Audit reads every audit item, by key.
func (s *Stack) Audit(ctx context.Context) (map[string]AuditItem, error) {
	items, err := Scan(ctx, s.Suite.Clients.DynamoDB, s.AuditTable)
	if err != nil {
		return nil, err
	}
	out := make(map[string]AuditItem, len(items))
	for _, it := range items {
		a := AuditItem{Key: S(it, AuditKey), Invocations: int(N(it, AuditInvocations)), Attempts: map[int]string{},
			Cancelled: map[int]time.Time{}}
		if m, ok := it[AuditCancelled].(*dbtypes.AttributeValueMemberM); ok {
			for k, v := range m.Value {
				n, err := strconv.Atoi(k)
				ms, ok := v.(*dbtypes.AttributeValueMemberN)
				if err != nil || !ok {
					return nil, fmt.Errorf("audit %s: cancelled %q=%v is not attempt=epoch ms", a.Key, k, v)
				}
				at, err := strconv.ParseInt(ms.Value, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("audit %s: cancelled %q=%v: %w", a.Key, k, ms.Value, err)
				}
				a.Cancelled[n] = time.UnixMilli(at)
			}
		}
		if m, ok := it[AuditAttempts].(*dbtypes.AttributeValueMemberM); ok {
			for k, v := range m.Value {
				n, err := strconv.Atoi(k)
				if err != nil {
					return nil, fmt.Errorf("audit %s: attempt %q is not a number", a.Key, k)
				}
				a.Attempts[n] = avString(v)
			}
		}
		if m, ok := it[AuditRuns].(*dbtypes.AttributeValueMemberM); ok {
			for id, v := range m.Value {
				var r AuditRun
				var ms int64
				if _, err := fmt.Sscanf(avString(v), "%d %s %d", &r.Attempt, &r.Processor, &ms); err != nil {
					return nil, fmt.Errorf("audit %s: run %s %q: %w", a.Key, id, avString(v), err)
				}
				r.Started = time.UnixMilli(ms)
				a.Runs = append(a.Runs, r)
			}
			slices.SortFunc(a.Runs, func(x, y AuditRun) int { return x.Started.Compare(y.Started) })
		}
		out[a.Key] = a
	}
	return out, nil
}

// Messages reads every row of the messages table, by wamid.
func (s *Stack) Messages(ctx context.Context) (map[string]Item, error) {
	items, err := Scan(ctx, s.Suite.Clients.DynamoDB, s.MessagesTable)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Item, len(items))
	for _, it := range items {
		out[S(it, resources.MessagesKey)] = it
	}
	return out, nil
}

// QueueDepth is what SQS reports of a queue (approximate, as SQS says).
type QueueDepth struct {
	Visible    int
	NotVisible int
	Delayed    int
}

// Total is every message still in the queue.
func (d QueueDepth) Total() int { return d.Visible + d.NotVisible + d.Delayed }

func (d QueueDepth) String() string {
	return fmt.Sprintf("%d visible, %d in flight, %d delayed", d.Visible, d.NotVisible, d.Delayed)
}

// Depth reads the main queue's and the DLQ's depth.
func (s *Stack) Depth(ctx context.Context) (queue, dlq QueueDepth, err error) {
	if queue, err = depth(ctx, s.Suite.Clients.SQS, s.QueueURL); err != nil {
		return
	}
	dlq, err = depth(ctx, s.Suite.Clients.SQS, s.DLQURL)
	return
}

func depth(ctx context.Context, q *sqs.Client, url string) (QueueDepth, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return QueueDepth{}, fmt.Errorf("depth of %s: %w", url, err)
	}
	a := func(name sqstypes.QueueAttributeName) int {
		n, _ := strconv.Atoi(out.Attributes[string(name)])
		return n
	}
	return QueueDepth{
		Visible:    a(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		NotVisible: a(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:    a(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

// Component is one backend in a health report.
type Component struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// ProcessorHealth is one processor in a worker's health report.
type ProcessorHealth struct {
	ID             string          `json:"id"`
	Status         string          `json:"status"`
	ProcessedCount int64           `json:"processed_count"`
	ErrorsCount    int64           `json:"errors_count"`
	InFlight       int64           `json:"in_flight"`
	LastPollAt     json.RawMessage `json:"last_poll_at"`
}

// Health is /health/detailed of either service.
type Health struct {
	HTTPStatus int                  `json:"-"`
	Status     string               `json:"status"`
	Timestamp  time.Time            `json:"timestamp"`
	Components map[string]Component `json:"components"`
	Processors []ProcessorHealth    `json:"processors"`
	// Breaker is the worker's ledger breaker (closed or open).
	Breaker struct {
		State string `json:"state"`
	} `json:"breaker"`
}

// Processed sums processed_count over the report's processors.
func (h Health) Processed() int64 {
	var n int64
	for _, p := range h.Processors {
		n += p.ProcessedCount
	}
	return n
}

// InFlight sums in_flight over the report's processors.
func (h Health) InFlight() int64 {
	var n int64
	for _, p := range h.Processors {
		n += p.InFlight
	}
	return n
}

// Health reads the process's /health/detailed (any HTTP status).
func (p *Process) Health(ctx context.Context) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/health/detailed"), nil)
	if err != nil {
		return Health{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Health{}, fmt.Errorf("%s /health/detailed: %w", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Health{}, fmt.Errorf("%s /health/detailed: %w", p.Name, err)
	}
	var h Health
	if err := json.Unmarshal(b, &h); err != nil {
		return Health{}, fmt.Errorf("%s /health/detailed: %s: %w: %.300s", p.Name, resp.Status, err, b)
	}
	h.HTTPStatus = resp.StatusCode
	return h, nil
}

// S reads a string attribute ("" when absent).
func S(it Item, name string) string { return avString(it[name]) }

func avString(v dbtypes.AttributeValue) string {
	switch v := v.(type) {
	case *dbtypes.AttributeValueMemberS:
		return v.Value
	case *dbtypes.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

// N reads a number attribute (0 when absent).
func N(it Item, name string) int64 {
	if v, ok := it[name].(*dbtypes.AttributeValueMemberN); ok {
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err == nil {
			return n
		}
		f, err := strconv.ParseFloat(v.Value, 64)
		if err == nil {
			return int64(f)
		}
	}
	return 0
}

// M reads a map attribute (nil when absent).
func M(it Item, name string) Item {
	if v, ok := it[name].(*dbtypes.AttributeValueMemberM); ok {
		return v.Value
	}
	return nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ProcessorIDs returns the ids of a worker's processors, from its health report.
func (p *Process) ProcessorIDs(ctx context.Context) (map[string]bool, error) {
	h, err := p.Health(ctx)
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(h.Processors))
	for _, pr := range h.Processors {
		ids[pr.ID] = true
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s reports no processors", p.Name)
	}
	return ids, nil
}

// Held returns the keys the ledger shows `processing` under one of owners.
func (s *Stack) Held(ctx context.Context, owners map[string]bool) ([]string, error) {
	items, err := s.Ledger(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k, it := range items {
		if it.State == ledger.StateProcessing && owners[it.Owner] {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
