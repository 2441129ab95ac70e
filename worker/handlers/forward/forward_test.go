package forward_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/worker/handlers/forward"
	"github.com/wahook/wahook/worker/processor"
)

const secret = "s3cret"

// request is what the test server saw.
type request struct {
	header http.Header
	body   []byte
}

// server answers with the given responses in turn (the last one repeats) and
// records the requests.
type server struct {
	mu        sync.Mutex
	requests  []request
	responses []func(w http.ResponseWriter)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, request{header: r.Header.Clone(), body: body})
	respond := s.responses[min(len(s.requests), len(s.responses))-1]
	s.mu.Unlock()
	respond(w)
}

func (s *server) seen() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

func newHandler(t *testing.T, responses ...func(w http.ResponseWriter)) (*forward.Handler, *server) {
	t.Helper()
	s := &server{responses: responses}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	h, err := forward.New(forward.Options{URL: ts.URL + "/hook", Secret: secret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return h, s
}

func event(t *testing.T, attempt int) processor.Event {
	t.Helper()
	env := envelope.FromEvent(webhook.Event{
		Key: webhook.MessageKey("wamid.F"), Kind: webhook.KindMessage, WAMID: "wamid.F",
		Raw: []byte(`{"id":"wamid.F","text":{"body":"hi"}}`),
	}, time.Now())
	body, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return processor.Event{Envelope: env, Body: body, Attempt: attempt, ProcessorID: "host-1-abcd-p1"}
}

func TestRequestIsSignedWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	h, s := newHandler(t, status(http.StatusNoContent))
	ev := event(t, 3)
	if err := h.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	reqs := s.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if string(r.body) != string(ev.Body) {
		t.Errorf("body %q, want the envelope %q", r.body, ev.Body)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.body)
	wantSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for name, want := range map[string]string{
		forward.HeaderIdempotencyKey: "msg#wamid.F",
		forward.HeaderAttempt:        "3",
		forward.HeaderSignature:      wantSig,
		"Content-Type":               "application/json",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if forward.Sign([]byte(secret), r.body) != wantSig {
		t.Error("Sign disagrees with HMAC-SHA256")
	}
}

func TestAnswersClassified(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name      string
		respond   func(w http.ResponseWriter)
		permanent bool
		ok        bool
		delay     time.Duration // requested; 0 = none
		delayMin  time.Duration
	}{
		{"200", status(200), false, true, 0, 0},
		{"202", status(202), false, true, 0, 0},
		{"400 permanent", status(400), true, false, 0, 0},
		{"404 permanent", status(404), true, false, 0, 0},
		{"422 permanent", status(422), true, false, 0, 0},
		{"408 retryable", status(408), false, false, 0, 0},
		{"500 retryable", status(500), false, false, 0, 0},
		{"503 retryable", status(503), false, false, 0, 0},
		{"429 with Retry-After seconds", status(429, "Retry-After", "7"), false, false, 7 * time.Second, 7 * time.Second},
		{"503 with Retry-After date", status(503, "Retry-After", date), false, false, -1, 80 * time.Second},
		{"429 with a bad Retry-After", status(429, "Retry-After", "soon"), false, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHandler(t, tc.respond)
			err := h.Handle(t.Context(), event(t, 1))
			if tc.ok {
				if err != nil {
					t.Fatalf("err %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("success, want an error")
			}
			if processor.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", processor.IsPermanent(err), tc.permanent, err)
			}
			var se *forward.StatusError
			if !errors.As(err, &se) {
				t.Errorf("err %v is no StatusError", err)
			}
			d, requested := processor.RequestedDelay(err)
			switch {
			case tc.delay == 0 && requested:
				t.Errorf("delay %s requested, want none", d)
			case tc.delay > 0 && d != tc.delay:
				t.Errorf("delay %s, want %s", d, tc.delay)
			case tc.delay < 0 && (d < tc.delayMin || d > 90*time.Second):
				t.Errorf("delay %s, want about 90s", d)
			}
		})
	}
}

// 500 and then 200: the first call asks for a retry, the second succeeds,
// both with the same idempotency key and their own attempt.
func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	h, s := newHandler(t, status(500), status(200))
	if err := h.Handle(t.Context(), event(t, 1)); err == nil || processor.IsPermanent(err) {
		t.Fatalf("first call: %v, want a retryable error", err)
	}
	if err := h.Handle(t.Context(), event(t, 2)); err != nil {
		t.Fatalf("second call: %v", err)
	}
	reqs := s.seen()
	if len(reqs) != 2 || reqs[0].header.Get(forward.HeaderIdempotencyKey) != reqs[1].header.Get(forward.HeaderIdempotencyKey) ||
		reqs[1].header.Get(forward.HeaderAttempt) != "2" {
		t.Errorf("requests %+v", reqs)
	}
}

func TestConnectionErrorsAndTimeoutsAreRetryable(t *testing.T) {
	t.Parallel()
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h, err := forward.New(forward.Options{URL: "http://" + addr, Secret: secret, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(t.Context(), event(t, 1)); err == nil || processor.IsPermanent(err) {
		t.Errorf("refused connection: %v, want a retryable error", err)
	}

	// A server slower than the client's timeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	h, err = forward.New(forward.Options{URL: slow.URL, Secret: secret, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(t.Context(), event(t, 1)); err == nil || processor.IsPermanent(err) {
		t.Errorf("timeout: %v, want a retryable error", err)
	}

	// The processor cancelling the handler: the cause comes back.
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(processor.ErrLeaseLost)
	if err := h.Handle(ctx, event(t, 1)); !errors.Is(err, processor.ErrLeaseLost) {
		t.Errorf("cancelled: %v, want the cause", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, o := range []forward.Options{
		{URL: "", Secret: secret},
		{URL: "ftp://x", Secret: secret},
		{URL: "/relative", Secret: secret},
		{URL: "http://x", Secret: ""},
	} {
		if _, err := forward.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestRetryAfterParsing(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"120":                           2 * time.Minute,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 23:59:00 GMT": 0, // past
		"garbage":                       0,
	} {
		got, ok := forward.RetryAfter(v, now)
		if got != want || ok != (want > 0) {
			t.Errorf("RetryAfter(%q) = %s, %v; want %s", v, got, ok, want)
		}
	}
}
