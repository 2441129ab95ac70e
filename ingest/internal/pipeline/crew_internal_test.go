package pipeline

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
)

// goid is the calling goroutine's id, from the header of its stack trace.
func goid(t *testing.T) string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, ok := bytes.Cut(bytes.TrimPrefix(buf, []byte("goroutine ")), []byte(" "))
	if !ok {
		t.Errorf("no goroutine id in %q", buf)
	}
	return string(id)
}

// A crew runs every function handed to it, on as few goroutines as run at
// once (plus those just finishing), not one each: the point of it is that
// few stacks grow to the SDK's depth.
func TestCrewRunsEveryFunctionOnFewGoroutines(t *testing.T) {
	t.Parallel()
	const n, slots = 1000, 8
	c := newCrew()
	sem := make(chan struct{}, slots)
	var (
		mu  sync.Mutex
		ran = make([]int, n)
		ids = map[string]int{}
	)
	for i := range n {
		sem <- struct{}{} // as callers do: a slot before the function is handed out
		c.Go(func() {
			defer func() { <-sem }()
			id := goid(t)
			mu.Lock()
			defer mu.Unlock()
			ran[i]++
			ids[id]++
		})
	}
	c.Wait()
	for i, k := range ran {
		if k != 1 {
			t.Fatalf("function %d ran %d times, want once", i, k)
		}
	}
	t.Logf("%d functions ran on %d goroutines", n, len(ids))
	if len(ids) >= n/10 {
		t.Errorf("%d functions ran on %d goroutines, want far fewer (the crew reuses its members)", n, len(ids))
	}
	// Wait stopped every member: the channel they take work from is closed.
	select {
	case <-c.work:
	default:
		t.Error("the crew's work channel is still open after Wait")
	}
}
