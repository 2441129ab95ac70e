package pipeline

import "sync"

// crew runs functions on goroutines it reuses. Go hands fn to a member that is
// idle, or starts a member for it; a member that has run its function takes
// the next one handed out before it leaves. A request makes two SDK calls per
// event, each on a goroutine whose stack grows to the SDK's depth: a goroutine
// per call grew (runtime.copystack) and the collector then scanned a thousand
// such stacks per 1,000-update body, a fifth of ingest's CPU; a crew grows
// only as many as run at once. Callers bound how many functions run at once
// (the limiter's and the settle slots). Wait waits for the functions handed
// out and stops the members; no Go may follow it.
type crew struct {
	work chan func()
	wg   sync.WaitGroup
}

func newCrew() *crew { return &crew{work: make(chan func())} }

// Go runs fn on an idle member, or on a new one.
func (c *crew) Go(fn func()) {
	select {
	case c.work <- fn:
	default:
		c.wg.Go(func() {
			fn()
			for fn := range c.work {
				fn()
			}
		})
	}
}

// Wait waits for every function handed out and for the members to leave.
func (c *crew) Wait() {
	close(c.work)
	c.wg.Wait()
}
