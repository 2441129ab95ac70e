// Package scenarios is wahook's race suite: each test drives real ingest and
// worker processes through one scenario of the seed's testing guide and
// asserts, with counts read from the backends, that no accepted event was lost
// or completed twice. `go test -short` runs the CI form (bounded to fit a
// 6-minute budget on 2 cores); without -short the long forms run.
package scenarios
