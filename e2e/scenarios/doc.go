// Package scenarios is wahook's race suite: each test drives real ingest and
// worker processes through one scenario of the seed's testing guide and
// asserts, with counts read from the backends, that no accepted event was lost
// or completed twice. `go test -short` runs the CI form (bounded to fit a
// 6-minute budget on 2 cores); without -short the long forms run.
//
// Scenarios run in parallel (t.Parallel): each has its own stack — tables,
// queues, processes, fault links and API injectors — and spends most of its
// time waiting on leases, visibility timeouts and polls. The ones whose
// assertions hang on wall-clock margins run alone first: TestLoad (the seed's
// latency ceiling), TestGracefulShutdown (hand-over within 2 s),
// TestHandlerIgnoringContext (exit within WAHOOK_SHUTDOWN_TIMEOUT + 3 s) and
// TestSlowBackend (2 s delays against a 3 s visibility timeout).
// Everything else waits on conditions, so a busy machine makes it slower, not
// red.
package scenarios
