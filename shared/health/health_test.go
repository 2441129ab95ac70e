package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/health"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	cases := []struct {
		name   string
		checks map[string]health.Check
		want   string
	}{
		{"all up", map[string]health.Check{"dynamodb": ok, "sqs": ok}, health.Healthy},
		{"one down", map[string]health.Check{"dynamodb": down, "sqs": ok}, health.Degraded},
		{"one hangs past the timeout", map[string]health.Check{"dynamodb": hang, "sqs": ok}, health.Degraded},
		{"all down", map[string]health.Check{"dynamodb": down, "sqs": hang}, health.Unhealthy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := health.NewChecker(100*time.Millisecond, c.checks).Run(context.Background())
			if r.Status != c.want {
				t.Fatalf("status %s, want %s (%+v)", r.Status, c.want, r.Components)
			}
			if len(r.Components) != len(c.checks) {
				t.Fatalf("components %v", r.Components)
			}
			for name, comp := range r.Components {
				wantUp := c.checks[name] != nil && comp.Error == ""
				if (comp.Status == health.Connected) != wantUp || comp.LatencyMS < 0 {
					t.Fatalf("%s: %+v", name, comp)
				}
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("checks not bounded by their timeout")
			}
		})
	}
}
