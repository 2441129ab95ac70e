package awsclient

import (
	"errors"

	"github.com/aws/smithy-go"
)

// IsUnknownOperation reports whether err is the service (or emulator) saying
// it does not implement the operation at all. dynalite answers
// UpdateTimeToLive and TransactWriteItems with HTTP 400
// UnknownOperationException (a *smithy.GenericAPIError); callers setting up
// resources can treat that as "not supported here" and log a warning.
func IsUnknownOperation(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "UnknownOperationException", "UnknownOperation", "InvalidAction", "NotImplemented":
		return true
	}
	return false
}
