package pipeline

// FIFO order requirement (issue 11): on a FIFO queue the events of one message
// group (a conversation) must enter the queue in the order of the webhook body,
// and none may enter once an earlier one of its group in the body did not:
// Meta's retry would then put the earlier one behind it. Sending a body's
// batches concurrently breaks the first rule; a failed entry or admission
// breaks the second. Keep both whatever the send path becomes: on a FIFO queue
// the pipeline admits the whole body first, then its outbox sends the batches
// one after another in body order through sendGated.
//
// One gap remains: SQS takes a batch's entries independently, so an entry
// refused inside a batch does not stop its conversation's later entries in
// the same batch. SQS refuses single entries for malformed input (checked
// here before sending: size, encoding), not for outages, which fail the call.

import (
	"context"

	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/envelope"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/webhook"
)

// groupGate remembers, per message group, the body position of the first
// event of the body that is not going to the queue.
type groupGate struct {
	pos   map[*item]int
	first map[string]int
}

// newGroupGate starts with the events whose admission failed (they are not
// sent; Meta's retry brings them).
func newGroupGate(items []item) *groupGate {
	g := &groupGate{pos: make(map[*item]int, len(items)), first: map[string]int{}}
	for i := range items {
		g.pos[&items[i]] = i
		if items[i].outcome == failed {
			g.unsent(&items[i])
		}
	}
	return g
}

func groupOf(e webhook.Event) string {
	return envelope.Envelope{PhoneNumberID: e.PhoneNumberID, Customer: e.Customer}.GroupID()
}

// unsent records that it is not in the queue.
func (g *groupGate) unsent(it *item) {
	k := groupOf(it.event)
	if f, ok := g.first[k]; !ok || g.pos[it] < f {
		g.first[k] = g.pos[it]
	}
}

// blocked reports whether an earlier event of it's group is not in the queue.
func (g *groupGate) blocked(it *item) bool {
	f, ok := g.first[groupOf(it.event)]
	return ok && f < g.pos[it]
}

// sendGated sends one batch of a FIFO queue's body; the outbox hands them over
// one after another, in body order. An event behind an unsent one of its group
// is not sent: it stays unsent (released, answered 503), and Meta's retry of
// the body sends both, in order.
func (p *Pipeline) sendGated(ctx context.Context, batch []*item, gate *groupGate, log *zap.Logger) {
	var send []*item
	for _, it := range batch {
		if gate.blocked(it) {
			gate.unsent(it)
			log.Warn("FIFO: event not sent, an earlier event of its conversation in this webhook is not in the queue",
				logging.Key(it.event.Key))
			continue
		}
		send = append(send, it)
	}
	if len(send) > 0 {
		p.sendBatch(ctx, send, log)
	}
	for _, it := range send {
		if !it.sent {
			gate.unsent(it)
		}
	}
}
