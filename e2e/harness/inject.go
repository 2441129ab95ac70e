package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// API names the AWS API an Injector sits in front of.
type API string

// The APIs wahook calls.
const (
	DynamoDB API = "dynamodb"
	SQS      API = "sqs"
)

// DynamoDBWrites are DynamoDB's write operations.
var DynamoDBWrites = []string{"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

// What an injected fault does to a call.
const (
	// actError answers with an AWS error instead of forwarding the call.
	actError = iota + 1
	// actLoseReply forwards the call, so it lands, then drops the connection
	// instead of answering: the caller cannot know it landed.
	actLoseReply
	// actDelay forwards the call after a delay.
	actDelay
	// actPartial forwards only some entries of a SendMessageBatch or
	// DeleteMessageBatch and reports the others in Failed (SenderFault false).
	actPartial
)

// Rule is one programmed fault: which calls, what happens to them, how often
// and for how long. Build it with the constructors and refine it with its
// methods, e.g. "writes throttled, reads fine, for a minute":
//
//	s.InjectAll(harness.DynamoDB, harness.Throttle().On(harness.DynamoDBWrites...).For(time.Minute))
type Rule struct {
	act    int
	code   string // error code, for actError
	msg    string // error message, for actError ("" for the harness's own)
	status int    // HTTP status, for actError
	delay  time.Duration
	ops    map[string]bool // nil: every operation
	prob   float64         // chance per matching call or entry; 0 means 1
	limit  int64           // at most this many injections; 0: no bound
	forDur time.Duration   // active this long from Add; 0: until cleared
	match  func(op string, body []byte) bool
	// entry, for PartialBatch: which entries may fail (nil: any); once: each
	// entry (by its message body or receipt handle) fails at most once.
	entry func(e map[string]any) bool
	once  *entrySet // shared by every injector the rule is added to
}

// entrySet is the entries a Once rule failed already.
type entrySet struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether id is new, and records it.
func (s *entrySet) first(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[id] {
		return false
	}
	s.seen[id] = true
	return true
}

// Throttle answers with DynamoDB's ProvisionedThroughputExceededException.
func Throttle() Rule { return Error("ProvisionedThroughputExceededException", http.StatusBadRequest) }

// Error answers with the AWS error code and HTTP status given, e.g.
// ThrottlingException/400, RequestLimitExceeded/400, InternalServerError/500.
func Error(code string, status int) Rule { return Rule{act: actError, code: code, status: status} }

// LoseReply forwards the call, which lands, and then drops the connection.
func LoseReply() Rule { return Rule{act: actLoseReply} }

// Delay forwards the call after d.
func Delay(d time.Duration) Rule { return Rule{act: actDelay, delay: d} }

// PartialBatch fails a share of the entries of SendMessageBatch and
// DeleteMessageBatch calls (the others go through), as SQS does when some
// entries hit an internal error: SenderFault false, so they may be retried.
func PartialBatch() Rule {
	return Rule{act: actPartial, ops: map[string]bool{"SendMessageBatch": true, "DeleteMessageBatch": true}}
}

// On limits r to the named operations (X-Amz-Target's last part).
func (r Rule) On(ops ...string) Rule {
	r.ops = make(map[string]bool, len(ops))
	for _, op := range ops {
		r.ops[op] = true
	}
	return r
}

// Probability applies r to a share p of the matching calls (of the entries,
// for PartialBatch).
func (r Rule) Probability(p float64) Rule { r.prob = p; return r }

// Times applies r at most n times.
func (r Rule) Times(n int) Rule { r.limit = int64(n); return r }

// For keeps r active for d after it is added.
func (r Rule) For(d time.Duration) Rule { r.forDur = d; return r }

// Entries narrows a PartialBatch to the entries f accepts (the entry as
// JSON: Id, MessageBody, MessageAttributes, ReceiptHandle…).
func (r Rule) Entries(f func(e map[string]any) bool) Rule { r.entry = f; return r }

// Once makes a PartialBatch fail each entry at most once (by its "key"
// message attribute, the event key wahook sends, else its body; by receipt
// handle for deletes): its retry goes through.
func (r Rule) Once() Rule { r.once = &entrySet{seen: map[string]bool{}}; return r }

// Message sets the error's message, e.g. AWS's own text naming an ARN and a
// table, to check that it goes no further than it should.
func (r Rule) Message(m string) Rule { r.msg = m; return r }

// Matching narrows r to calls whose body f accepts (e.g. only the claims
// among UpdateItem calls).
func (r Rule) Matching(f func(op string, body []byte) bool) Rule { r.match = f; return r }

// Active is a Rule added to an Injector: it counts what it did.
type Active struct {
	Rule
	until time.Time
	hits  atomic.Int64
}

// Hits is how many calls (entries, for PartialBatch) the rule changed.
func (a *Active) Hits() int64 { return a.hits.Load() }

// Injector is an HTTP proxy in front of one AWS endpoint that answers calls
// the way AWS fails, as programmed by rules: API errors, throttling, latency,
// writes that land but whose reply is lost, partial batch failures. It knows
// the JSON protocols DynamoDB and SQS speak.
type Injector struct {
	API API
	srv *http.Server
	ln  net.Listener

	target    *url.URL
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	done      chan struct{}

	mu    sync.Mutex
	rules []*Active
	rng   *rand.Rand

	// received counts the messages SQS handed out through this injector;
	// sent those it accepted from a send.
	received atomic.Int64
	sent     atomic.Int64
	// handedOutAgain maps each FIFO message group of which a message was
	// handed out with an ApproximateReceiveCount above 1 to when that was
	// first seen.
	handedOutAgain sync.Map
	// handedOut counts, per message id, how often a receive through this
	// injector handed the message out (*atomic.Int64).
	handedOut sync.Map
}

// NewInjector starts an injector on a free 127.0.0.1 port in front of target
// (an http:// endpoint of api).
func NewInjector(api API, target string) (*Injector, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("injector: bad target %q", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	in := &Injector{
		API: api, ln: ln, target: u, done: make(chan struct{}),
		transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		rng:       rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x1d)),
	}
	in.proxy = httputil.NewSingleHostReverseProxy(u)
	in.proxy.Transport = in.transport
	in.proxy.ErrorLog = log.New(io.Discard, "", 0)
	in.proxy.ModifyResponse = in.observe
	in.srv = &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(in.done)
		_ = in.srv.Serve(ln)
	}()
	return in, nil
}

// observe counts the messages a ReceiveMessage answer hands out and those a
// SendMessage or SendMessageBatch answer says SQS took.
func (in *Injector) observe(resp *http.Response) error {
	if in.API != SQS || resp.StatusCode != http.StatusOK {
		return nil
	}
	op := operation(resp.Request)
	if op == "SendMessage" {
		in.sent.Add(1)
		return nil
	}
	if op != "ReceiveMessage" && op != "SendMessageBatch" {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if op == "SendMessageBatch" {
		var out struct{ Successful []json.RawMessage }
		if json.Unmarshal(b, &out) == nil {
			in.sent.Add(int64(len(out.Successful)))
		}
		return nil
	}
	var out struct {
		Messages []struct {
			MessageId  string
			Attributes map[string]string
		}
	}
	if json.Unmarshal(b, &out) == nil {
		in.received.Add(int64(len(out.Messages)))
		// Before the answer reaches the process: whatever it hands out is
		// handled after this time.
		seen := time.Now()
		for _, m := range out.Messages {
			c, _ := in.handedOut.LoadOrStore(m.MessageId, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
			g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
			n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
			if g != "" && n > 1 {
				in.handedOutAgain.LoadOrStore(g, seen)
			}
		}
	}
	return nil
}

// HandedOut is how often SQS handed the message with this id out through
// this injector.
func (in *Injector) HandedOut(messageID string) int64 {
	if n, ok := in.handedOut.Load(messageID); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// Received is how many messages SQS handed out through this injector.
func (in *Injector) Received() int64 { return in.received.Load() }

// Sent is how many messages SQS accepted through this injector, from the
// answers it passed on (not the calls a rule answered: lost replies, partial
// batches).
func (in *Injector) Sent() int64 { return in.sent.Load() }

// HandedOutAgain records in groups, for each FIFO message group of which SQS
// handed out a message a second time or later (its ApproximateReceiveCount
// above 1, as the worker requests both attributes: given back, held back
// behind an unfinished one, its worker killed), the earliest time this
// injector saw that. A delivery to a poll nobody reads any more is not seen,
// but the message's next one is.
func (in *Injector) HandedOutAgain(groups map[string]time.Time) {
	in.handedOutAgain.Range(func(k, v any) bool {
		g, at := k.(string), v.(time.Time)
		if first, ok := groups[g]; !ok || at.Before(first) {
			groups[g] = at
		}
		return true
	})
}

// URL is the injector's endpoint.
func (in *Injector) URL() string { return "http://" + in.ln.Addr().String() }

// Add programs a rule; it applies from now on, before the rules added later.
func (in *Injector) Add(r Rule) *Active {
	a := &Active{Rule: r}
	if r.forDur > 0 {
		a.until = time.Now().Add(r.forDur)
	}
	in.mu.Lock()
	in.rules = append(in.rules, a)
	in.mu.Unlock()
	return a
}

// Clear removes every rule.
func (in *Injector) Clear() {
	in.mu.Lock()
	in.rules = nil
	in.mu.Unlock()
}

// Close stops the injector.
func (in *Injector) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := in.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = in.srv.Close()
	}
	<-in.done
	in.transport.CloseIdleConnections()
	return err
}

// operation is the call's X-Amz-Target operation ("UpdateItem").
func operation(r *http.Request) string {
	op := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	return op
}

// pick returns the first active rule that applies to this call, counted.
func (in *Injector) pick(op string, body []byte) *Active {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	for _, a := range in.rules {
		if (a.ops != nil && !a.ops[op]) || (!a.until.IsZero() && now.After(a.until)) {
			continue
		}
		if a.match != nil && !a.match(op, body) {
			continue
		}
		if a.act == actPartial {
			return a // the share applies per entry
		}
		if a.prob > 0 && in.rng.Float64() >= a.prob {
			continue
		}
		if a.limit > 0 && a.hits.Load() >= a.limit {
			continue
		}
		a.hits.Add(1)
		return a
	}
	return nil
}

func (in *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the caller went away
	}
	op := operation(r)
	a := in.pick(op, body)
	if a == nil {
		in.forward(w, r, body)
		return
	}
	switch a.act {
	case actError:
		in.answerError(w, a.code, a.status, a.msg)
	case actDelay:
		select {
		case <-time.After(a.delay):
		case <-r.Context().Done():
			return
		}
		in.forward(w, r, body)
	case actLoseReply:
		in.loseReply(w, r, body)
	case actPartial:
		in.partial(w, r, op, body, a)
	}
}

func (in *Injector) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	in.proxy.ServeHTTP(w, r)
}

// answerError writes an AWS JSON-protocol error.
func (in *Injector) answerError(w http.ResponseWriter, code string, status int, msg string) {
	if msg == "" {
		msg = "injected by the wahook e2e harness"
	}
	ns := "com.amazonaws.dynamodb.v20120810#"
	if in.API == SQS {
		ns = "com.amazonaws.sqs#"
		fault := "Sender"
		if status >= 500 {
			fault = "Receiver"
		}
		w.Header().Set("x-amzn-query-error", code+";"+fault)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": ns + code, "message": msg})
}

// upstream sends the call on to the target and returns the whole answer.
func (in *Injector) upstream(r *http.Request, body []byte) (*http.Response, []byte, error) {
	u := *in.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header = r.Header.Clone()
	req.Host = r.Host
	resp, err := in.transport.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// loseReply lets the call land, then closes the caller's connection without
// an answer.
func (in *Injector) loseReply(w http.ResponseWriter, r *http.Request, body []byte) {
	_, _, _ = in.upstream(r, body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection all the same
	}
	_ = conn.Close()
}

// partial forwards the entries of a batch call that survive the rule's share
// and reports the rest as failed.
func (in *Injector) partial(w http.ResponseWriter, r *http.Request, op string, body []byte, a *Active) {
	var req map[string]json.RawMessage
	var entries []map[string]any
	if err := json.Unmarshal(body, &req); err != nil || json.Unmarshal(req["Entries"], &entries) != nil {
		in.forward(w, r, body)
		return
	}
	var keep, failed []map[string]any
	in.mu.Lock()
	for _, e := range entries {
		hit := (a.entry == nil || a.entry(e)) &&
			(a.prob <= 0 || in.rng.Float64() < a.prob) && (a.limit <= 0 || a.hits.Load() < a.limit) &&
			(a.once == nil || a.once.first(entryID(e)))
		if hit {
			a.hits.Add(1)
			failed = append(failed, map[string]any{"Id": e["Id"], "Code": "InternalError", "SenderFault": false,
				"Message": "injected by the wahook e2e harness"})
		} else {
			keep = append(keep, e)
		}
	}
	in.mu.Unlock()
	out := map[string]any{"Successful": []any{}, "Failed": failed}
	if len(keep) > 0 {
		kept, _ := json.Marshal(keep)
		req["Entries"] = kept
		fwd, _ := json.Marshal(req)
		resp, b, err := in.upstream(r, fwd)
		if err != nil {
			in.answerError(w, "InternalError", http.StatusInternalServerError, "")
			return
		}
		if resp.StatusCode != http.StatusOK {
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(b)
			return
		}
		var got struct {
			Successful []json.RawMessage `json:"Successful"`
			Failed     []json.RawMessage `json:"Failed"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			in.answerError(w, "InternalError", http.StatusInternalServerError, "")
			return
		}
		out["Successful"] = got.Successful
		for _, f := range got.Failed {
			failed = append(failed, map[string]any{"raw": f})
		}
		all := make([]any, 0, len(failed))
		for _, f := range failed {
			if raw, ok := f["raw"]; ok {
				all = append(all, raw)
			} else {
				all = append(all, f)
			}
		}
		out["Failed"] = all
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

// Table matches the calls that name table (DynamoDB's TableName): DynamoDB
// throttles one table, not the whole account.
func Table(table string) func(op string, body []byte) bool {
	needle := []byte(`"TableName":"` + table + `"`)
	return func(_ string, body []byte) bool { return bytes.Contains(body, needle) }
}

// entryID names a batch entry across retries: the event key attribute wahook
// sets on every message (its body carries a per-request timestamp), else the
// body, else the receipt handle.
func entryID(e map[string]any) string {
	if attrs, ok := e["MessageAttributes"].(map[string]any); ok {
		if k, ok := attrs["key"].(map[string]any); ok {
			if v, ok := k["StringValue"].(string); ok {
				return "key:" + v
			}
		}
	}
	return fmt.Sprint(e["MessageBody"], e["ReceiptHandle"])
}
