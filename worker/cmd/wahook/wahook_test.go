package main_test

// These tests build the real wahook binary and drive it against the local
// emulators, with a worker pool (the processor package) handling the events,
// and assert on what the ledger and the queues hold afterwards.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/handlers/store"
	"github.com/wahook/wahook/worker/internal/cli"
	"github.com/wahook/wahook/worker/processor"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the wahook command once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wahook-cli-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wahook")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build wahook: %v", buildErr)
	}
	return binPath
}

// stack is one test's tables and queues, and a worker pool over them.
type stack struct {
	t        *testing.T
	clients  *awsclient.Clients
	spec     resources.Spec
	ledger   *ledger.Store
	queueURL string
	dlqURL   string

	mu   sync.Mutex
	runs map[string]int
}

func newStack(t *testing.T) *stack {
	t.Helper()
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name := awstest.UniqueName("cli")
	spec := resources.Spec{LedgerTable: name + "-ledger", MessagesTable: name + "-messages", QueueName: name + "-q",
		DLQName: name + "-dlq", VisibilityTimeout: 2 * time.Second, MaxReceiveCount: 10}
	prov, err := resources.Ensure(t.Context(), c.DynamoDB, c.SQS, spec, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(c.DynamoDB, spec.LedgerTable, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, clients: c, spec: spec, ledger: l, queueURL: prov.QueueURL, dlqURL: prov.DLQURL, runs: map[string]int{}}
}

// startWorker runs a pool whose handler counts runs, fails for good while
// broken says so, and stores messages as the store handler does.
func (s *stack) startWorker(broken func(key string) bool) {
	s.t.Helper()
	st, err := store.New(s.clients.DynamoDB, s.spec.MessagesTable)
	if err != nil {
		s.t.Fatal(err)
	}
	count := processor.HandlerFunc(func(ctx context.Context, ev processor.Event) error {
		s.mu.Lock()
		s.runs[ev.Key()]++
		s.mu.Unlock()
		if broken(ev.Key()) {
			return processor.Permanent(errors.New("crm refuses it: account locked"))
		}
		return nil
	})
	pool, err := processor.New(processor.Options{QueueURL: s.queueURL, DeadLetterURL: s.dlqURL, Processors: 2,
		VisibilityTimeout: 2 * time.Second, ReceiveWait: time.Second, MaxAttempts: 2},
		processor.Deps{Ledger: s.ledger, Queue: s.clients.SQS, Handler: processor.Chain(count, st)})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (s *stack) runsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[key]
}

func (s *stack) send(body string) {
	s.t.Helper()
	if _, err := s.clients.SQS.SendMessage(s.t.Context(), &sqs.SendMessageInput{QueueUrl: &s.queueURL, MessageBody: aws.String(body)}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) envelope(wamid string) string {
	s.t.Helper()
	ev := webhook.Event{Key: webhook.MessageKey(wamid), Kind: webhook.KindMessage, WAMID: wamid, Customer: "15550001111",
		Timestamp: "1700000000", PhoneNumberID: "PNID", Raw: []byte(`{"id":"` + wamid + `","from":"15550001111","type":"text","text":{"body":"hello"}}`)}
	b, err := envelope.FromEvent(ev, time.Now()).Encode()
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// depth is a queue's visible plus in-flight messages, as SQS counts them.
func (s *stack) depth(url string) int {
	s.t.Helper()
	out, err := s.clients.SQS.GetQueueAttributes(s.t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		s.t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

func (s *stack) state(key string) ledger.Item {
	s.t.Helper()
	it, err := s.ledger.Get(s.t.Context(), key)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		s.t.Fatal(err)
	}
	return it
}

// wahook runs the binary with args against s and checks its exit code.
func (s *stack) wahook(wantCode int, args ...string) string {
	s.t.Helper()
	cmd := exec.CommandContext(s.t.Context(), binary(s.t), args...)
	cmd.Env = append(os.Environ(), emu.Env()...)
	cmd.Env = append(cmd.Env, "WAHOOK_LEDGER_TABLE="+s.spec.LedgerTable, "WAHOOK_MESSAGES_TABLE="+s.spec.MessagesTable,
		"WAHOOK_QUEUE_URL="+s.queueURL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		s.t.Fatalf("wahook %v: %v", args, err)
	}
	if code != wantCode {
		s.t.Fatalf("wahook %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func decode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return v
}

// TestOperatorSession: events fail, `dlq list` says why, the cause is fixed,
// `dlq replay` runs each failed event once more (a new series of attempts),
// a replay re-run after a crash at any step runs nothing twice, poison is
// not replayed, `event` shows the history, `purge` deletes for good only
// when confirmed.
func TestOperatorSession(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const good = "wamid.GOOD"
	a, b, c := webhook.MessageKey("wamid.A"), webhook.MessageKey("wamid.B"), webhook.MessageKey(good)
	var broken atomic.Bool
	broken.Store(true)
	s.startWorker(func(key string) bool { return broken.Load() && key != c })
	for _, w := range []string{"wamid.A", "wamid.B", good} {
		s.send(s.envelope(w))
	}
	s.send("not an envelope")
	eventually(t, 30*time.Second, "3 dead letters, C done", func() bool {
		return s.depth(s.dlqURL) == 3 && s.state(a).State == ledger.StateFailed && s.state(b).State == ledger.StateFailed &&
			s.state(c).State == ledger.StateDone
	})

	letters := decode[[]cli.DeadLetter](t, s.wahook(0, "dlq", "list", "-o", "json"))
	reasons := map[string]int{}
	var poisonID string
	var aLetter cli.DeadLetter
	for _, l := range letters {
		reasons[l.Reason]++
		switch {
		case l.Reason == deadletter.ReasonPoison:
			poisonID = l.ID
		case l.Key == a:
			aLetter = l
		}
	}
	if len(letters) != 3 || reasons[deadletter.ReasonFailed] != 2 || reasons[deadletter.ReasonPoison] != 1 {
		t.Fatalf("dlq list: %+v, want 2 failed and 1 poison", letters)
	}
	if aLetter.Attempt != 1 || aLetter.Kind != "message" || !strings.Contains(aLetter.Error, "account locked") {
		t.Fatalf("dead letter of %s: %+v", a, aLetter)
	}
	if got := decode[[]cli.DeadLetter](t, s.wahook(0, "dlq", "list", "--reason", "^failed$", "-o", "json")); len(got) != 2 {
		t.Fatalf("dlq list --reason ^failed$: %d, want 2", len(got))
	}
	if table := s.wahook(0, "dlq", "list"); !strings.Contains(table, "REASON") || !strings.Contains(table, a) {
		t.Fatalf("dlq list table:\n%s", table)
	}

	// Usage errors, a dry run and an unconfirmed replay change nothing.
	s.wahook(cli.ExitUsage, "dlq", "replay")
	s.wahook(cli.ExitUsage, "dlq", "replay", "--key", a, "--all")
	s.wahook(cli.ExitUsage, "-o", "yaml", "status")
	s.wahook(0, "dlq", "replay", "--key", a, "--dry-run")
	s.wahook(cli.ExitAborted, "dlq", "replay", "--key", a)
	if n := s.depth(s.dlqURL); n != 3 || s.state(a).State != ledger.StateFailed {
		t.Fatalf("after dry run and unconfirmed replay: DLQ %d, %s %s; want 3 and failed", n, a, s.state(a).State)
	}

	// A replay that crashed after reopening B and before sending it.
	var bLetter cli.DeadLetter
	for _, l := range letters {
		if l.Key == b {
			bLetter = l
		}
	}
	if _, err := s.ledger.Requeue(t.Context(), b, ledger.DoneBy(bLetter.Processor, bLetter.Attempt)); err != nil {
		t.Fatal(err)
	}

	// The cause is fixed; the failed events are replayed.
	broken.Store(false)
	outcomes := decode[[]cli.Outcome](t, s.wahook(0, "dlq", "replay", "--reason", "^failed$", "--yes", "-o", "json"))
	if len(outcomes) != 2 || outcomes[0].Outcome != cli.OutcomeReplayed || outcomes[1].Outcome != cli.OutcomeReplayed {
		t.Fatalf("replay outcomes %+v, want 2 replayed", outcomes)
	}
	eventually(t, 20*time.Second, "A and B done", func() bool {
		return s.state(a).State == ledger.StateDone && s.state(b).State == ledger.StateDone && s.depth(s.queueURL) == 0
	})
	for _, k := range []string{a, b} {
		it := s.state(k)
		if s.runsOf(k) != 2 || it.Reopens != 1 || it.Attempt != 2 || it.SeriesStart != 1 {
			t.Fatalf("%s: %d runs, reopens %d, attempt %d, series start %d; want 2, 1, 2, 1", k, s.runsOf(k), it.Reopens, it.Attempt, it.SeriesStart)
		}
	}
	if s.runsOf(c) != 1 || s.depth(s.dlqURL) != 1 {
		t.Fatalf("C ran %d times, DLQ holds %d; want 1 and 1 (the poison)", s.runsOf(c), s.depth(s.dlqURL))
	}

	// A replay that crashed after sending A and before deleting its dead
	// letter: the copy is still in the DLQ. Running the replay again sends it
	// once more, harmlessly, and deletes it.
	attrs := deadletter.Attributes(deadletter.Info{Reason: deadletter.ReasonFailed, Error: aLetter.Error, Attempt: aLetter.Attempt,
		Processor: aLetter.Processor, MessageID: aLetter.SourceID, Key: a, Kind: aLetter.Kind})
	if _, err := s.clients.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &s.dlqURL, MessageBody: aws.String(s.envelope("wamid.A")),
		MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
	out := decode[[]cli.Outcome](t, s.wahook(0, "dlq", "replay", "--key", a, "--yes", "-o", "json"))
	if len(out) != 1 || out[0].Outcome != cli.OutcomeReplayed {
		t.Fatalf("re-run replay: %+v", out)
	}
	eventually(t, 20*time.Second, "the resent copy handled", func() bool { return s.depth(s.queueURL) == 0 && s.depth(s.dlqURL) == 1 })
	if s.runsOf(a) != 2 || s.state(a).State != ledger.StateDone {
		t.Fatalf("A: %d runs, %s; want 2 and done", s.runsOf(a), s.state(a).State)
	}

	// Poison is not replayable: --all replays nothing and says so (exit 4).
	out = decode[[]cli.Outcome](t, s.wahook(cli.ExitPartial, "dlq", "replay", "--all", "--yes", "-o", "json"))
	if len(out) != 1 || out[0].Outcome != cli.OutcomeSkipped || s.depth(s.dlqURL) != 1 {
		t.Fatalf("replay --all: %+v, DLQ %d; want the poison skipped and kept", out, s.depth(s.dlqURL))
	}
	if show := s.wahook(0, "dlq", "show", poisonID); !strings.Contains(show, "not an envelope") || !strings.Contains(show, "poison") {
		t.Fatalf("dlq show:\n%s", show)
	}
	s.wahook(cli.ExitNotFound, "dlq", "show", "no-such-id")

	// The event's history: the failure, the reopen; and its stored row.
	rep := decode[cli.EventReport](t, s.wahook(0, "event", "wamid.A", "-o", "json"))
	if len(rep.Items) != 1 || rep.Items[0].State != ledger.StateDone || rep.Message == nil {
		t.Fatalf("event wamid.A: %+v", rep)
	}
	var events []string
	for _, h := range rep.Items[0].History {
		events = append(events, h.Event)
	}
	if strings.Join(events, ",") != "failed,reopened" {
		t.Fatalf("history %v, want failed,reopened", events)
	}
	if text := s.wahook(0, "event", a); !strings.Contains(text, "reopened 1 times") || !strings.Contains(text, "account locked") {
		t.Fatalf("event %s:\n%s", a, text)
	}
	s.wahook(cli.ExitNotFound, "event", "msg#nothing-here")

	st := decode[cli.Status](t, s.wahook(0, "status", "-o", "json"))
	if st.States["done"] != 3 || st.Items != 3 || st.DLQ.Visible != 1 || st.DeadLetters[deadletter.ReasonPoison] != 1 || st.MessageRows != 3 {
		t.Fatalf("status: %+v", st)
	}

	// Purge: only what is old enough, only when confirmed.
	s.wahook(cli.ExitAborted, "dlq", "purge", "--older-than", "0s")
	s.wahook(0, "dlq", "purge", "--older-than", "1h", "--yes")
	if n := s.depth(s.dlqURL); n != 1 {
		t.Fatalf("DLQ %d after an unconfirmed purge and a purge of nothing old enough, want 1", n)
	}
	s.wahook(0, "dlq", "purge", "--older-than", "0s", "--yes")
	if n := s.depth(s.dlqURL); n != 0 {
		t.Fatalf("DLQ %d after purge, want 0", n)
	}
}

// TestHelpEverywhere: every command answers --help without a backend.
func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"status"}, {"event"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "replay"}, {"dlq", "purge"}} {
		cmd := exec.CommandContext(t.Context(), binary(t), append(args, "--help")...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Errorf("wahook %v --help: %v\n%s", args, err, out)
		}
	}
}
