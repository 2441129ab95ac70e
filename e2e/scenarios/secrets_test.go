package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Issue 7, case 9: secrets stay secret. The worker forwards to a
// WAHOOK_FORWARD_URL with a password in its userinfo and a token in its
// query, signs with WAHOOK_FORWARD_SECRET; ingest verifies with two app
// secrets (WAHOOK_APP_SECRETS) and a verify token. The target drops the
// connection on each event's first request, so every event's first attempt
// fails with a transport error naming the URL (logged), and succeeds on its
// retry. Then the backends fail, one way at a time, for both services:
// DynamoDB answering AccessDeniedException (its message naming an ARN and the
// table, as AWS's does), the DynamoDB link refused, the SQS link black-holed.
// Required: `/health/detailed` of ingest and worker reports each failure as
// its class (access-denied, unreachable, timeout) and contains no ARN, no
// table or queue name and no error text; no secret appears anywhere in any
// process's log (its bytes scanned), start-up and error lines included.
func TestSecretsStaySecret(t *testing.T) {
	t.Parallel()
	const (
		userinfoSecret = "e2e-userinfo-secret-5f3a"
		querySecret    = "e2e-query-secret-81c2"
		signingSecret  = "e2e-forward-signing-secret-2d9e"
		secondApp      = "e2e-second-app-secret-77b0"
		arn            = "arn:aws:iam::123456789012:role/wahook-e2e"
	)
	n := form(6, 30)

	// Each event's first request: the connection dropped unanswered. Every
	// answer closes its connection: Go's transport replays a request that
	// carries an Idempotency-Key when a reused connection dies under it, so
	// a drop on a kept-alive connection would reach the handler as success
	// (seen: "4 forward failures logged for 6 events").
	seen := newPerKey()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if seen.take(r.Header.Get(headerIdempotencyKey), 1) {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(target.Close)
	forwardURL := strings.Replace(target.URL, "http://", "http://wahook:"+userinfoSecret+"@", 1) + "/hook?token=" + querySecret

	s := harness.NewStack(t, harness.StackOptions{Visibility: 3 * time.Second})
	secrets := []string{userinfoSecret, querySecret, signingSecret, secondApp, s.AppSecret, s.VerifyToken}
	in := s.StartIngest(map[string]string{"WAHOOK_APP_SECRET": "", "WAHOOK_APP_SECRETS": s.AppSecret + "," + secondApp})
	w := s.StartWorker(harness.WorkerOptions{Processors: 2, Env: map[string]string{
		"WAHOOK_HANDLERS":       "store,audit,forward",
		"WAHOOK_FORWARD_URL":    forwardURL,
		"WAHOOK_FORWARD_SECRET": signingSecret,
		// The first attempt's retry comes at once, not after a backoff.
		"WAHOOK_RETRY_BASE": "100ms",
	}})

	g := harness.NewGen(seed(t))
	keys := deliverKeys(t, s, g, n)
	s.AwaitSettled(keys, time.Minute)
	// Each event: its first run failed at the target, its second completed.
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
	if lines := logLines(t, []*harness.Process{w}, "giving the event back to retry"); len(lines) < len(keys) {
		t.Fatalf("%d forward failures logged for %d events, want one each: the error path did not run", len(lines), len(keys))
	}

	// The backends fail; each service's health names the class only.
	hidden := []string{"arn:", s.LedgerTable, s.QueueName, "not authorized", "injected", "dial tcp", "127.0.0.1", "describe table"}
	for _, f := range []struct {
		class string
		apply func() (restore func())
	}{
		{"access-denied", func() func() {
			s.InjectAll(harness.DynamoDB, harness.Error("AccessDeniedException", http.StatusBadRequest).On("DescribeTable").
				Message(fmt.Sprintf("User: %s is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:123456789012:table/%s", arn, s.LedgerTable)))
			return s.ClearInjections
		}},
		{"unreachable", func() func() { return cutLinks(t, harness.FaultRefuse, in.DynamoDB, w.DynamoDB) }},
		{"timeout", func() func() { return cutLinks(t, harness.FaultBlackhole, in.SQS, w.SQS) }},
	} {
		restore := f.apply()
		component := "dynamodb"
		if f.class == "timeout" {
			component = "sqs"
		}
		for _, p := range []*harness.Process{in, w} {
			harness.Eventually(t, 30*time.Second, p.Name+" reports "+component+" "+f.class, func(ctx context.Context) error {
				body, err := detailedHealth(ctx, p)
				if err != nil {
					return err
				}
				var h harness.Health
				if err := json.Unmarshal(body, &h); err != nil {
					return fmt.Errorf("%w: %.300s", err, body)
				}
				if got := h.Components[component].Error; got != f.class {
					return fmt.Errorf("%s error %q, want %q: %s", component, got, f.class, body)
				}
				for _, x := range hidden {
					if bytes.Contains(body, []byte(x)) {
						t.Errorf("%s /health/detailed shows %q: %s", p.Name, x, body)
					}
				}
				return nil
			})
		}
		restore()
	}

	// No secret in any log, start-up and error lines included.
	for _, p := range s.Processes("") {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"msg":"starting `)) {
			t.Errorf("%s log has no start-up line: nothing to check", p.Name)
		}
		for _, secret := range secrets {
			if i := bytes.Index(b, []byte(secret)); i >= 0 {
				start, end := max(0, i-200), min(len(b), i+100)
				t.Errorf("%s log shows secret %q: …%s…", p.Name, secret, b[start:end])
			}
		}
	}
	if lines := logLines(t, []*harness.Process{w}, "xxxxx@127.0.0.1"); len(lines) == 0 {
		t.Error("no worker log line names the forward URL redacted: the scan proves nothing")
	}
}

// cutLinks applies f to links and returns their restore.
func cutLinks(t *testing.T, f harness.Fault, links ...*harness.Link) func() {
	t.Helper()
	for _, l := range links {
		if err := l.Apply(f); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, l := range links {
			if err := l.Restore(); err != nil {
				t.Error(err)
			}
		}
	}
}

// detailedHealth is p's /health/detailed body, as served.
func detailedHealth(ctx context.Context, p *harness.Process) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/health/detailed"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
