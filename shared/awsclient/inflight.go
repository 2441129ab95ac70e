package awsclient

import (
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/sync/semaphore"
)

// inFlightClient bounds the requests a service client has in flight at once,
// across every caller in the process. A request beyond the bound waits, in
// arrival order, for a slot (under its own context, so its timeout covers the
// wait), instead of queueing at the backend: a backend that is already busy
// serves the calls in flight no faster when more arrive, and against an
// emulator that answers one call at a time (dynalite is one Node.js event
// loop), every extra call only lengthens the queue that all of them, the
// latency-sensitive ones included, wait in. Measured in README's benchmark.
//
// The slot is held until the response's headers arrive: the bodies of the
// calls this bounds (DynamoDB's JSON answers) are small and read at once.
type inFlightClient struct {
	next  aws.HTTPClient
	slots *semaphore.Weighted
}

func newInFlightClient(next aws.HTTPClient, n int) *inFlightClient {
	return &inFlightClient{next: next, slots: semaphore.NewWeighted(int64(n))}
}

// Do implements aws.HTTPClient.
func (c *inFlightClient) Do(req *http.Request) (*http.Response, error) {
	if err := c.slots.Acquire(req.Context(), 1); err != nil {
		return nil, fmt.Errorf("wait for a call slot: %w", err)
	}
	defer c.slots.Release(1)
	return c.next.Do(req)
}
