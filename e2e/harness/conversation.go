package harness

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Conversation is one customer's thread with the business number: inbound
// messages and statuses of the business's outbound messages, split into
// webhook bodies. Its group is the FIFO message group ingest gives its events.
type Conversation struct {
	Group    string
	Payloads []Payload
}

// Keys are the conversation's event keys in send order: body after body, each
// body's keys in the order ingest reads them.
func (c Conversation) Keys() []string {
	var keys []string
	for _, p := range c.Payloads {
		keys = append(keys, p.Keys()...)
	}
	return keys
}

// Conversations returns n conversations of events events each (about one in
// five a status), in bodies of 1..maxPer events.
func (g *Gen) Conversations(n, events, maxPer int) []Conversation {
	out := make([]Conversation, n)
	for i := range out {
		from, name := g.Customer()
		c := Conversation{Group: g.PhoneNumberID + ":" + from}
		var lifecycle []Status
		for left := events; left > 0; {
			k := min(1+g.rng.IntN(maxPer), left)
			left -= k
			var msgs []Message
			var statuses []Status
			for range k {
				if g.rng.IntN(5) == 0 {
					if len(lifecycle) == 0 {
						lifecycle = g.Lifecycle(g.WAMID(), from)
					}
					statuses = append(statuses, lifecycle[0])
					lifecycle = lifecycle[1:]
					continue
				}
				msgs = append(msgs, g.MessageFrom(from, name))
			}
			c.Payloads = append(c.Payloads, g.Payload(msgs, statuses))
		}
		out[i] = c
	}
	return out
}

// SequenceEntry is one handler run that got to its end, as the audit
// handler's sequence recorded it.
type SequenceEntry struct {
	Key     string
	Attempt int
}

// Sequences reads the audit handler's sequence table: per conversation
// (message group), the handler runs that completed, in the order they did.
func (s *Stack) Sequences(ctx context.Context) (map[string][]SequenceEntry, error) {
	if s.SequenceTable == "" {
		return nil, fmt.Errorf("stack %s has no sequence table (StackOptions.Sequence)", s.Name)
	}
	items, err := Scan(ctx, s.Suite.Clients.DynamoDB, s.SequenceTable)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]SequenceEntry, len(items))
	for _, it := range items {
		group := S(it, AuditKey)
		list, _ := it["seq"].(*dbtypes.AttributeValueMemberL)
		if list == nil {
			return nil, fmt.Errorf("sequence of %s: no list", group)
		}
		for _, v := range list.Value {
			raw := avString(v)
			i := strings.LastIndexByte(raw, '#')
			n, err := strconv.Atoi(raw[i+1:])
			if i < 0 || err != nil {
				return nil, fmt.Errorf("sequence of %s: entry %q is not <key>#<attempt>", group, raw)
			}
			out[group] = append(out[group], SequenceEntry{Key: raw[:i], Attempt: n})
		}
	}
	return out, nil
}

// Completions is a conversation's completion order: the runs of its sequence
// whose attempt is the one the ledger completed. A handler may run again after
// a kill (at least once invocation); only the run under the completing claim
// counts as the event's completion, and each event has exactly one. reruns
// counts the other runs (they finished, but their claim did not complete).
func Completions(seq []SequenceEntry, items map[string]LedgerItem) (order []string, reruns int) {
	for _, e := range seq {
		if it, ok := items[e.Key]; ok && it.Attempt == e.Attempt {
			order = append(order, e.Key)
			continue
		}
		reruns++
	}
	return order, reruns
}
