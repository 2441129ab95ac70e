package awsclient

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// hideWriterToClient wraps the SDK's HTTP client so that the request body
// net/http sees is a plain io.ReadCloser, without the io.WriterTo that
// smithy-go's body wrapper (safeWriteToReadCloser over io.NopCloser of a
// bytes reader) exposes.
//
// Why: aws/aws-sdk-go-v2 #1825 and #2737. With the default client, responses
// were sometimes read from a connection that net/http's write loop had already
// closed ("use of closed network connection" while decoding a 200 response).
// Since PR #2949 the SDK retries net.ErrClosed silently; for SQS ReceiveMessage
// that retry is not harmless: the first attempt's messages were received by
// the server (their visibility timeout started, their receive count went up)
// but never reached the caller, so they stay invisible until the visibility
// timeout expires. Seen against goaws with large ReceiveMessage responses; the
// fix found then was to hide io.WriterTo, so net/http copies the body through
// its own Read loop. It reproduces against ElasticMQ too, now and then under
// load (TestSQS1000Messages without the workaround); with it, never seen. The
// wrapper costs one small allocation per request, so it is always on.
type hideWriterToClient struct {
	next aws.HTTPClient
}

// plainBody exposes only Read and Close of the wrapped body.
type plainBody struct {
	r io.ReadCloser
}

func (b plainBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b plainBody) Close() error               { return b.r.Close() }

// Do implements aws.HTTPClient.
func (c *hideWriterToClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		if _, ok := req.Body.(io.WriterTo); ok {
			req.Body = plainBody{r: req.Body}
		}
	}
	return c.next.Do(req)
}
