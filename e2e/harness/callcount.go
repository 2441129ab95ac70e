package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// CallCounter is an HTTP reverse proxy in front of a backend endpoint that
// counts the AWS API calls passing through it, by operation (the X-Amz-Target
// of the JSON protocols both DynamoDB and SQS speak). The benchmark points the
// processes' links at it to measure backend calls per event.
type CallCounter struct {
	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	counts map[string]int64
	done   chan struct{}
}

// NewCallCounter starts a counter on a free 127.0.0.1 port in front of target
// (an http:// endpoint).
func NewCallCounter(target string) (*CallCounter, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("call counter: bad target %q", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("call counter: %w", err)
	}
	c := &CallCounter{ln: ln, counts: map[string]int64{}, done: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	// A failed call reaches its caller as a 502; long polls cancelled by a
	// process that stops are no news.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	c.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			op := r.Header.Get("X-Amz-Target")
			if op == "" {
				op = r.Method + " " + r.URL.Path
			} else if i := strings.LastIndexByte(op, '.'); i >= 0 {
				op = op[i+1:]
			}
			c.mu.Lock()
			c.counts[op]++
			c.mu.Unlock()
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

// URL is the counter's endpoint.
func (c *CallCounter) URL() string { return "http://" + c.ln.Addr().String() }

// Counts returns the calls seen so far, by operation.
func (c *CallCounter) Counts() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Reset forgets the calls seen so far.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
}

// Close stops the counter and waits for it.
func (c *CallCounter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = c.srv.Close()
	}
	<-c.done
	return err
}
