package processor

// The receives in flight, and the order of a shutdown: polls finished before events are given back.

import "sync"

// polls counts a pool's receives in flight. At shutdown no new receive
// starts (begin refuses once close was called), but the ones in flight are
// not abandoned: SQS keeps an abandoned long poll open on its side until its
// wait ends and hands it whatever becomes visible meanwhile — messages then
// invisible for their visibility timeout, received by nobody. The events the
// shutdown gives back with visibility 0 would go exactly there. So the pool
// waits for idle before it cuts the handlers and gives their events back
// (see Pool.Run); Options.ReceiveWait is capped at ShutdownTimeout, so that
// the polls in flight at SIGTERM have ended by then.
type polls struct {
	mu       sync.Mutex
	inFlight int
	closed   bool
	idle     chan struct{} // closed once closed and no receive is in flight
}

func newPolls() *polls { return &polls{idle: make(chan struct{})} }

// begin registers a receive about to start. It reports false once close was
// called: the caller then starts none.
func (p *polls) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inFlight++
	return true
}

// end unregisters a receive begin let start.
func (p *polls) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	if p.closed && p.inFlight == 0 {
		close(p.idle)
	}
}

// close refuses new receives; Idle ends once those in flight have returned.
func (p *polls) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.inFlight == 0 {
		close(p.idle)
	}
}

// Idle is closed once close was called and no receive is in flight.
func (p *polls) Idle() <-chan struct{} { return p.idle }
