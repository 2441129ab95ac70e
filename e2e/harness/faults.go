package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Faults is an in-process Toxiproxy: TCP proxies on 127.0.0.1 between each
// process and the backend, whose traffic the test can cut, hang, reset or slow.
type Faults struct {
	server *toxiproxy.ApiServer

	mu    sync.Mutex
	links []*Link
}

// NewFaults returns an empty Toxiproxy.
func NewFaults() *Faults {
	metrics := toxiproxy.NewMetricsContainer(prometheus.NewRegistry())
	return &Faults{server: toxiproxy.NewServer(metrics, zerolog.Nop())}
}

// Link opens a proxy on a free 127.0.0.1 port to the endpoint's host:port.
func (f *Faults) Link(name, endpoint string) (*Link, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("link %s: bad endpoint %q", name, endpoint)
	}
	upstream := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		upstream = net.JoinHostPort(u.Hostname(), port)
	}
	p := toxiproxy.NewProxy(f.server, name, "127.0.0.1:0", upstream)
	if err := f.server.Collection.Add(p, true); err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	l := &Link{Name: name, Upstream: upstream, Scheme: u.Scheme, Addr: p.Listen, proxy: p}
	f.mu.Lock()
	f.links = append(f.links, l)
	f.mu.Unlock()
	return l, nil
}

// Close stops every proxy.
func (f *Faults) Close() {
	f.mu.Lock()
	links := f.links
	f.links = nil
	f.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
}

// Fault is a way a link fails.
type Fault string

// The faults.
const (
	// FaultRefuse: the proxy stops listening and drops its connections; new
	// connections are refused (a dead host, a firewall that rejects).
	FaultRefuse Fault = "refuse"
	// FaultBlackhole: bytes vanish both ways; calls hang until their timeout (a
	// partition, a firewall that drops).
	FaultBlackhole Fault = "blackhole"
	// FaultReset: every connection is reset on its first byte (TCP RST).
	FaultReset Fault = "reset"
	// FaultDropReplies: requests reach the backend, replies are lost — writes
	// are applied but the caller never learns it.
	FaultDropReplies Fault = "drop_replies"
	// FaultLatency: 400ms ± 200ms each way.
	FaultLatency Fault = "latency"
)

// AllFaults lists every Fault, for table tests and chaos.
var AllFaults = []Fault{FaultRefuse, FaultBlackhole, FaultReset, FaultDropReplies, FaultLatency}

// Link is one proxy: point a process's endpoint at Endpoint().
type Link struct {
	Name     string
	Upstream string // host:port of the backend
	Scheme   string
	Addr     string // 127.0.0.1:port the proxy listens on

	mu     sync.Mutex
	proxy  *toxiproxy.Proxy
	toxics []string
	cut    bool
}

// Endpoint is the URL a process uses instead of the backend's.
func (l *Link) Endpoint() string { return l.Scheme + "://" + l.Addr }

// Apply breaks the link in the given way until Restore.
func (l *Link) Apply(f Fault) error {
	switch f {
	case FaultRefuse:
		return l.Cut()
	case FaultBlackhole:
		return l.addToxics("timeout", map[string]any{"timeout": 0}, "upstream", "downstream")
	case FaultReset:
		return l.addToxics("reset_peer", map[string]any{"timeout": 0}, "upstream")
	case FaultDropReplies:
		return l.addToxics("timeout", map[string]any{"timeout": 0}, "downstream")
	case FaultLatency:
		return l.addToxics("latency", map[string]any{"latency": 400, "jitter": 200}, "upstream", "downstream")
	default:
		return fmt.Errorf("link %s: unknown fault %q", l.Name, f)
	}
}

// Cut stops the proxy: connections in use are closed, new ones refused.
func (l *Link) Cut() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proxy.Stop()
	l.cut = true
	return nil
}

// Restore removes every toxic and listens again (on the same port).
func (l *Link) Restore() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, name := range l.toxics {
		if err := l.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
			errs = append(errs, fmt.Errorf("remove toxic %s: %w", name, err))
		}
	}
	l.toxics = nil
	if l.cut {
		// The port was ours a moment ago; retry briefly should another
		// listener race us for it.
		var err error
		for try := 0; try < 20; try++ {
			if err = l.proxy.Start(); err == nil || errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
				err = nil
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("relisten on %s: %w", l.Addr, err))
		} else {
			l.cut = false
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore link %s: %w", l.Name, err)
	}
	return nil
}

// Broken reports whether a fault is in place.
func (l *Link) Broken() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut || len(l.toxics) > 0
}

// Close stops the proxy for good.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proxy.Stop()
}

func (l *Link) addToxics(kind string, attrs map[string]any, streams ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, stream := range streams {
		name := kind + "_" + stream
		body, err := json.Marshal(map[string]any{
			"name": name, "type": kind, "stream": stream, "toxicity": 1, "attributes": attrs,
		})
		if err != nil {
			return fmt.Errorf("link %s: toxic %s: %w", l.Name, name, err)
		}
		if _, err := l.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("link %s: add toxic %s: %w", l.Name, name, err)
		}
		l.toxics = append(l.toxics, name)
	}
	return nil
}
