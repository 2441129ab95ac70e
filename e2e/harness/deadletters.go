package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/envelope"
)

// DeadLetters receives every copy in the stack's dead-letter queue and
// returns what their attributes say, one per copy. The copies are left
// hidden for a minute (tests read them once, at the end).
func (s *Stack) DeadLetters(ctx context.Context) ([]deadletter.Info, error) {
	seen := map[string]deadletter.Info{}
	err := s.receiveDeadLetters(ctx, func(m sqstypes.Message) {
		seen[aws.ToString(m.MessageId)] = deadletter.Parse(m.MessageAttributes)
	})
	if err != nil {
		return nil, err
	}
	out := make([]deadletter.Info, 0, len(seen))
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[id])
	}
	return out, nil
}

// deadLetterCopy is a message in the dead-letter queue: its id and the event
// key its body names ("" for a body that is not an envelope).
type deadLetterCopy struct{ id, key string }

// deadLetterCopies receives every copy in the dead-letter queue, leaving them
// hidden for a minute, as DeadLetters does.
func (s *Stack) deadLetterCopies(ctx context.Context) ([]deadLetterCopy, error) {
	seen := map[string]string{}
	err := s.receiveDeadLetters(ctx, func(m sqstypes.Message) {
		env, _ := envelope.Decode([]byte(aws.ToString(m.Body)))
		seen[aws.ToString(m.MessageId)] = env.Key
	})
	if err != nil {
		return nil, err
	}
	out := make([]deadLetterCopy, 0, len(seen))
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, deadLetterCopy{id: id, key: seen[id]})
	}
	return out, nil
}

// receiveDeadLetters receives the dead-letter queue until two long polls in a
// row find nothing, hiding each copy for a minute, and calls fn for each
// receive of one.
func (s *Stack) receiveDeadLetters(ctx context.Context, fn func(sqstypes.Message)) error {
	for empty := 0; empty < 2; {
		out, err := s.Suite.Clients.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return fmt.Errorf("receive from %s: %w", s.DLQName, err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			fn(m)
		}
	}
	return nil
}
