// Package forward is the built-in handler that POSTs each event's envelope to
// the team's own service, signed, with the event key as the idempotency key.
//
// The request carries:
//
//	Content-Type: application/json
//	Idempotency-Key: <event key>
//	X-Wahook-Attempt: <attempt, the fencing token>
//	X-Wahook-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//	traceparent: <W3C trace context of the handler's span, when traces are on>
//
// A 2xx answer is success; 408, 429, 5xx, timeouts and connection errors are
// retried (a Retry-After header is honoured); any other answer is permanent.
// Redirects are never followed: a 3xx is a permanent error naming Location.
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

	"go.opentelemetry.io/otel/propagation"

	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/tracing"
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
	shown  string // url, redacted for logs and errors
	secret []byte
	client *http.Client
}

// New validates opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward: URL %s is not an absolute http(s) URL", logging.RedactURLString(opts.URL))
	}
	if opts.Secret == "" {
		return nil, errors.New("forward: empty signing secret")
	}
	var client http.Client
	if opts.Client != nil {
		client = *opts.Client
	} else {
		client.Timeout = opts.Timeout
		if client.Timeout <= 0 {
			client.Timeout = 10 * time.Second
		}
	}
	// Never follow a redirect: Go's client turns a 301/302/303 into a GET
	// without the body, so a 2xx at the new place would mark the event done
	// though the target never received it. A redirect is answered as it is.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Handler{url: opts.URL, shown: logging.RedactURL(u), secret: []byte(opts.Secret), client: &client}, nil
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

// RedirectError is a 3xx answer: the target asks to be reached elsewhere.
// wahook does not follow it (the body and method would not survive every kind
// of redirect); WAHOOK_FORWARD_URL must name the final address.
type RedirectError struct {
	Code int
	// Location is the answer's Location header, resolved against the request
	// and redacted.
	Location string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("forward: HTTP %d redirect to %s: not followed; set WAHOOK_FORWARD_URL to the final address", e.Code, e.Location)
}

// redactLocation resolves resp's Location header against its request.
func redactLocation(resp *http.Response) string {
	loc, err := resp.Location()
	if errors.Is(err, http.ErrNoLocation) {
		return "(no Location header)"
	}
	if err != nil {
		return "(unparsable Location header)"
	}
	return logging.RedactURL(loc)
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
	// The handler's span (when traced) continues in the team's service.
	tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("forward %s: %w", ev.Key(), context.Cause(ctx))
		}
		// The client's error names the URL with its query, where a token may
		// live: name it redacted.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			uerr.URL = h.shown
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
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// The target moved: sending again would only meet the same answer,
		// and following it is not ours to decide (see New). Fix the URL.
		return processor.Permanent(fmt.Errorf("forward %s: %w", ev.Key(), &RedirectError{
			Code: resp.StatusCode, Location: redactLocation(resp)}))
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
