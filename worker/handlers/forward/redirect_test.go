package forward_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/worker/handlers/forward"
	"github.com/wahook/wahook/worker/processor"
)

// A redirect is a permanent error naming the Location; no second request is
// made, neither to the target nor to where it points. (Go's client would turn
// a 302/303 into a GET without the body, and a 2xx there would mark the event
// done though nobody received it.)
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			elsewhere := &server{responses: []func(http.ResponseWriter){status(200)}}
			es := httptest.NewServer(elsewhere)
			t.Cleanup(es.Close)
			h, target := newHandler(t, status(code, "Location", es.URL+"/moved?token=hunter2"))
			err := h.Handle(t.Context(), event(t, 1))
			if err == nil {
				t.Fatalf("HTTP %d answered success, want a permanent error", code)
			}
			if !processor.IsPermanent(err) {
				t.Errorf("HTTP %d: %v is retryable, want permanent", code, err)
			}
			var re *forward.RedirectError
			if !errors.As(err, &re) || re.Code != code {
				t.Fatalf("HTTP %d: %v, want a RedirectError with the code", code, err)
			}
			if want := es.URL + "/moved?xxxxx"; re.Location != want {
				t.Errorf("Location %q, want %q (resolved, query redacted)", re.Location, want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the Location's query", err)
			}
			if n := len(target.seen()); n != 1 {
				t.Errorf("target saw %d requests, want 1", n)
			}
			if n := len(elsewhere.seen()); n != 0 {
				t.Errorf("the redirect's target saw %d requests, want 0", n)
			}
		})
	}
}

// A client passed in Options is not changed, yet redirects are still not
// followed.
func TestRedirectsNotFollowedWithOwnClient(t *testing.T) {
	t.Parallel()
	s := &server{responses: []func(http.ResponseWriter){status(302, "Location", "/elsewhere")}}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	own := &http.Client{Timeout: time.Second}
	h, err := forward.New(forward.Options{URL: ts.URL + "/hook", Secret: secret, Client: own})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Handle(t.Context(), event(t, 1))
	var re *forward.RedirectError
	if !errors.As(err, &re) || len(s.seen()) != 1 {
		t.Fatalf("err %v after %d requests, want one request and a RedirectError", err, len(s.seen()))
	}
	if own.CheckRedirect != nil {
		t.Error("the caller's client was modified")
	}
}

// Errors name the target with its userinfo and query masked.
func TestConnectionErrorRedactsURL(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	h, err := forward.New(forward.Options{URL: "http://svc:pa55word@" + addr + "/hook?api_key=hunter2", Secret: secret, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Handle(t.Context(), event(t, 1))
	if err == nil {
		t.Fatal("success against a closed port")
	}
	for _, secret := range []string{"pa55word", "hunter2"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the target %s", err, addr)
	}
}
