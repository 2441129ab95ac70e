package awsclient

import "github.com/aws/aws-sdk-go-v2/aws"

// WithTestHTTP returns o with the io.WriterTo workaround switched off (when
// exposeWriterTo) and the final HTTP client wrapped by wrap (when non-nil).
func WithTestHTTP(o Options, exposeWriterTo bool, wrap func(aws.HTTPClient) aws.HTTPClient) Options {
	o.exposeWriterTo = exposeWriterTo
	o.wrapHTTP = wrap
	return o
}

// HideWriterTo exposes the workaround wrapper for unit tests.
func HideWriterTo(next aws.HTTPClient) aws.HTTPClient { return &hideWriterToClient{next: next} }
