package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/wahook/wahook/shared/awserr"
)

func TestClass(t *testing.T) {
	t.Parallel()
	op := func(err error) error {
		return fmt.Errorf("describe table arn:aws:dynamodb:eu-west-1:123456789012:table/wahook-ledger: %w",
			&smithy.OperationError{ServiceID: "DynamoDB", OperationName: "DescribeTable", Err: err})
	}
	status := func(code int, err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: err}
	}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"throttled", op(&types.ProvisionedThroughputExceededException{}), awserr.ClassThrottled},
		{"throttling code", op(&smithy.GenericAPIError{Code: "ThrottlingException"}), awserr.ClassThrottled},
		{"429", op(status(429, errors.New("slow down"))), awserr.ClassThrottled},
		{"retry quota", op(fmt.Errorf("failed to get rate limit token, %w", ratelimit.QuotaExceededError{Requested: 5})), awserr.ClassThrottled},
		{"access denied", op(&smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User arn:aws:iam::1:role/x is not authorized"}), awserr.ClassAccessDenied},
		{"bad credentials", op(&smithy.GenericAPIError{Code: "UnrecognizedClientException"}), awserr.ClassAccessDenied},
		{"403", op(status(403, errors.New("forbidden"))), awserr.ClassAccessDenied},
		{"deadline", op(context.DeadlineExceeded), awserr.ClassTimeout},
		{"refused", op(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), awserr.ClassUnreachable},
		{"dns", op(&net.DNSError{Err: "no such host", Name: "dynamodb.invalid", IsNotFound: true}), awserr.ClassUnreachable},
		{"internal server error", op(&smithy.GenericAPIError{Code: "InternalServerError", Fault: smithy.FaultServer}), awserr.ClassError},
		{"missing table", op(&types.ResourceNotFoundException{}), awserr.ClassError},
	} {
		if got := awserr.Class(c.err); got != c.want {
			t.Errorf("%s: Class = %q, want %q", c.name, got, c.want)
		}
	}
}
