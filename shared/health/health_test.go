package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/wahook/wahook/shared/awserr"
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

// A failing component shows the failure's class, never its text.
func TestReportShowsClassNotText(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:dynamodb:eu-west-1:123456789012:table/wahook-ledger"
	checks := map[string]health.Check{
		"dynamodb": func(context.Context) error {
			return fmt.Errorf("describe table %s: %w", arn, &smithy.GenericAPIError{Code: "AccessDeniedException",
				Message: "User: arn:aws:sts::123456789012:assumed-role/wahook is not authorized"})
		},
		"sqs": func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("queue https://sqs/123456789012/q: %w", ctx.Err())
		},
	}
	r := health.NewChecker(50*time.Millisecond, checks).Run(context.Background())
	if got := r.Components["dynamodb"].Error; got != awserr.ClassAccessDenied {
		t.Errorf("dynamodb error %q, want %q", got, awserr.ClassAccessDenied)
	}
	if got := r.Components["sqs"].Error; got != awserr.ClassTimeout {
		t.Errorf("sqs error %q, want %q", got, awserr.ClassTimeout)
	}
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body), "123456789012") || strings.Contains(string(body), "wahook-ledger") {
		t.Errorf("report %s shows an account id or a table name", body)
	}
}
