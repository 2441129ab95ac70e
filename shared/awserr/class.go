package awserr

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Classes of backend failure that a health report may show: unlike the raw
// error, a class names no table, queue, account or ARN.
const (
	ClassTimeout      = "timeout"
	ClassThrottled    = "throttled"
	ClassAccessDenied = "access-denied"
	ClassUnreachable  = "unreachable"
	ClassError        = "error"
)

// accessDeniedCodes are the API error codes of refused credentials or
// permissions.
var accessDeniedCodes = map[string]bool{
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"UnrecognizedClientException": true,
	"InvalidClientTokenId":        true,
	"ExpiredToken":                true,
	"ExpiredTokenException":       true,
	"SignatureDoesNotMatch":       true,
	"MissingAuthenticationToken":  true,
	"InvalidSignatureException":   true,
	"IncompleteSignature":         true,
	"AuthFailure":                 true,
	"NotAuthorized":               true,
}

// Class names the kind of failure err is, for reports that must not carry its
// text: timeout, throttled, access-denied, unreachable or error. nil is "".
func Class(err error) string {
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch code := apiErr.ErrorCode(); {
		case accessDeniedCodes[code]:
			return ClassAccessDenied
		case throttlingCodes[code] && code != "InternalServerError" && code != "InternalFailure" && code != "ServiceUnavailable":
			return ClassThrottled
		}
	}
	if RetryQuotaExceeded(err) {
		return ClassThrottled
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusForbidden, http.StatusUnauthorized:
			return ClassAccessDenied
		case http.StatusTooManyRequests:
			return ClassThrottled
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ClassTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.As(err, &dnsErr) || errors.As(err, &opErr) {
		return ClassUnreachable
	}
	return ClassError
}
