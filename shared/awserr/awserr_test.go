package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/wahook/wahook/shared/awserr"
)

func TestClassification(t *testing.T) {
	t.Parallel()
	ccf := &types.ConditionalCheckFailedException{Message: new("The conditional request failed")}
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "PutItem", Err: err}
	}
	cases := []struct {
		name      string
		err       error
		condition bool
		transient bool
	}{
		{"nil", nil, false, false},
		{"conditional check", fmt.Errorf("acquire k: %w", op(ccf)), true, false},
		{"throttled", op(&types.ProvisionedThroughputExceededException{}), false, true},
		{"generic throttling code", op(&smithy.GenericAPIError{Code: "ThrottlingException"}), false, true},
		{"server fault", op(&smithy.GenericAPIError{Code: "Whatever", Fault: smithy.FaultServer}), false, true},
		{"validation", op(&smithy.GenericAPIError{Code: "ValidationException", Fault: smithy.FaultClient}), false, false},
		{"missing table", op(&types.ResourceNotFoundException{}), false, false},
		{"refused", op(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), false, true},
		{"reset", fmt.Errorf("x: %w", syscall.ECONNRESET), false, true},
		{"deadline", op(context.DeadlineExceeded), false, true},
		{"retries exhausted", &retry.MaxAttemptsError{Attempt: 3, Err: errors.New("boom")}, false, true},
		// The standard retryer's own words when its quota runs dry; the
		// throttling error it would have retried is not wrapped.
		{"retry quota exceeded", op(fmt.Errorf("failed to get rate limit token, %w", ratelimit.QuotaExceededError{Available: 0, Requested: 5})), false, true},
		{"cancelled", op(context.Canceled), false, false},
		{"plain", errors.New("no idea"), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := awserr.ConditionFailed(c.err); got != c.condition {
				t.Errorf("ConditionFailed = %v, want %v", got, c.condition)
			}
			if got := awserr.Transient(c.err); got != c.transient {
				t.Errorf("Transient = %v, want %v", got, c.transient)
			}
		})
	}
}
