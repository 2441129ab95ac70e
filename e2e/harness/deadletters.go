package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/deadletter"
)

// DeadLetters receives every copy in the stack's dead-letter queue and
// returns what their attributes say, one per copy. The copies are left
// hidden for a minute (tests read them once, at the end).
func (s *Stack) DeadLetters(ctx context.Context) ([]deadletter.Info, error) {
	seen := map[string]deadletter.Info{}
	for empty := 0; empty < 2; {
		out, err := s.Suite.Clients.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return nil, fmt.Errorf("receive from %s: %w", s.DLQName, err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			seen[aws.ToString(m.MessageId)] = deadletter.Parse(m.MessageAttributes)
		}
	}
	out := make([]deadletter.Info, 0, len(seen))
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[id])
	}
	return out, nil
}
