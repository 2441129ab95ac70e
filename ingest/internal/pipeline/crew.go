package pipeline

import "sync"

// crew runs functions on goroutines it reuses. Go hands fn to a member that is
// idle, or starts a member for it; a member that has run its function takes
// the next one handed out before it leaves. A request makes two SDK calls per
// event, each on a goroutine whose stack grows to the SDK's depth: with a new
// goroutine per call, growing them (runtime.copystack) took 7 % of ingest's
// CPU in a 1,000-update body's profile, 2.7 % with crews, which grow only as
// many stacks as run at once. Callers bound how many functions run at once
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
