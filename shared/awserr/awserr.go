// Package awserr classifies errors returned by the AWS SDK so that callers decide
// with errors.As on typed errors, never by reading messages.
package awserr

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ConditionFailed reports whether err is DynamoDB's answer to a failed condition
// expression: a decision, not a fault.
func ConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// throttlingCodes are the API error codes AWS services use for "slow down".
var throttlingCodes = map[string]bool{
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"RequestLimitExceeded":                   true,
	"ProvisionedThroughputExceededException": true,
	"RequestThrottled":                       true,
	"RequestThrottledException":              true,
	"TooManyRequestsException":               true,
	"LimitExceededException":                 true,
	"ServiceUnavailable":                     true,
	"InternalServerError":                    true,
	"InternalFailure":                        true,
	"KMSThrottlingException":                 true,
}

// Transient reports whether err is backend trouble that may pass by itself:
// throttling, a timeout, a refused or reset connection, a 5xx answer, or the SDK
// giving up after retrying any of those (attempts or its retry quota spent). A conditional-check failure, a validation
// error or a missing resource is not transient. A cancelled context is not
// transient either: the caller stopped on purpose.
func Transient(err error) bool {
	if err == nil || ConditionFailed(err) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var maxAttempts *retry.MaxAttemptsError
	if errors.As(err, &maxAttempts) {
		return true
	}
	if RetryQuotaExceeded(err) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500 {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return throttlingCodes[apiErr.ErrorCode()] || apiErr.ErrorFault() == smithy.FaultServer
	}
	var canceled *smithy.CanceledError
	if errors.As(err, &canceled) {
		return false
	}
	var opError *smithy.OperationError
	if errors.As(err, &opError) {
		// A transport failure the SDK could not classify (e.g. a connection that
		// closed mid-response): retrying is the safe reading.
		var deserialize *smithy.DeserializationError
		return errors.As(err, &deserialize) || errors.As(opError.Err, &netErr)
	}
	return false
}

// RetryQuotaExceeded reports whether err is the SDK's client-side retry quota
// running dry: under sustained throttling or outage the standard retryer stops
// retrying and returns this error *instead of* the one it would have retried
// (which it does not wrap), so without this the failure would read as final.
func RetryQuotaExceeded(err error) bool {
	var q ratelimit.QuotaExceededError
	return errors.As(err, &q)
}
