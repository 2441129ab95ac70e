// Package forward is the built-in handler that POSTs each event's envelope to
// the team's own service, signed, with the event key as the idempotency key.
//
// The request carries:
//
//	Content-Type: application/json
//	Idempotency-Key: <event key>
//	X-Wahook-Attempt: <attempt, the fencing token>
//	X-Wahook-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//
// A 2xx answer is success; 408, 429, 5xx, timeouts and connection errors are
// retried (a Retry-After header is honoured); any other answer is permanent.
package forward

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wahook/wahook/worker/processor"
)

// Request headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderAttempt        = "X-Wahook-Attempt"
	HeaderSignature      = "X-Wahook-Signature-256"
)

// Options configures a Handler.
type Options struct {
	// URL is where events are POSTed (http or https).
	URL string
	// Secret keys the body's HMAC-SHA256 signature; required.
	Secret string
	// Timeout bounds one request (default 10s). Ignored when Client is set.
	Timeout time.Duration
	// Client defaults to an http.Client with Timeout.
	Client *http.Client
}

// Handler forwards events.
type Handler struct {
	url    string
	secret []byte
	client *http.Client
}

// New validates opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward: URL %q is not an absolute http(s) URL", opts.URL)
	}
	if opts.Secret == "" {
		return nil, errors.New("forward: empty signing secret")
	}
	client := opts.Client
	if client == nil {
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		client = &http.Client{Timeout: timeout}
	}
	return &Handler{url: opts.URL, secret: []byte(opts.Secret), client: client}, nil
}

// Sign returns the X-Wahook-Signature-256 value for body: "sha256=" and the
// hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	// Body is the start of the answer's body, for the logs.
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("forward: HTTP %d: %s", e.Code, e.Body)
}

// Handle implements processor.Handler.
func (h *Handler) Handle(ctx context.Context, ev processor.Event) error {
	body := ev.Body
	if len(body) == 0 {
		b, err := ev.Envelope.Encode()
		if err != nil {
			return processor.Permanent(err)
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return processor.Permanent(fmt.Errorf("forward %s: %w", ev.Key(), err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wahook-worker")
	req.Header.Set(HeaderIdempotencyKey, ev.Key())
	req.Header.Set(HeaderAttempt, strconv.Itoa(ev.Attempt))
	req.Header.Set(HeaderSignature, Sign(h.secret, body))
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("forward %s: %w", ev.Key(), context.Cause(ctx))
		}
		// Timeouts, refused and reset connections: retryable.
		return fmt.Errorf("forward %s: %w", ev.Key(), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	serr := fmt.Errorf("forward %s: %w", ev.Key(), &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet))})
	if !Retryable(resp.StatusCode) {
		return processor.Permanent(serr)
	}
	if d, ok := RetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		return processor.RetryAfter(d, serr)
	}
	return serr
}

// Retryable reports whether an HTTP status is worth retrying: 408, 429, 5xx.
func Retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// RetryAfter parses a Retry-After header — delay seconds or an HTTP date —
// into a positive delay from now.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs <= 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, false
}
