package awstest_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// A client killed mid-request (kill -9 in the race suite) resets its
// connection while dynalite reads the body. dynalite 4.0.0 rethrows that and
// dies unless localstack/dynalite/abort-guard.js is preloaded: it must keep
// answering.
func TestDynamoDBSurvivesAbortedRequests(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(emu.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Headers promise 1000 bytes of body; send 10, then reset.
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\n"+
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"Limit\":1", u.Host)
		time.Sleep(50 * time.Millisecond) // let the server start reading the body: the window of the bug
		if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		if err := conn.Close(); err != nil {
			t.Fatalf("reset %d: %v", i, err)
		}
	}
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.DynamoDB.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("dynalite stopped answering after clients aborted requests: %v\n%s", err, emu.Logs(2048))
	}
}
