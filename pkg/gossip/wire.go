package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
)

// Message kinds: the first byte of every user message and push-pull state.
const (
	kindAttachment byte = 'a' // one wireAttach, signed by its node
	kindTokens     byte = 't' // envelope of []authority.UsedToken (small batch)
	kindRevoke     byte = 'r' // envelope of []revoke.Record (small batch)
	kindLeave      byte = 'l' // envelope of wireLeave
	kindState      byte = 's' // envelope of wireState (push-pull)
	kindCoord      byte = 'c' // Vivaldi coordinate in a ping ack
)

// Bounds on what a remote message may carry.
const (
	maxTokenBatch   = 32      // tokens in one broadcast
	maxTokenIDLen   = 256     // bytes of a token id
	maxStateTokens  = 50_000  // tokens carried in a push-pull
	maxStateRevokes = 100_000 // revocations carried in a push-pull
	maxRevokeBatch  = 16      // revocations in one broadcast
	maxEntries      = 200_000 // attachment entries held in total
	maxMessageBytes = 1400    // every broadcast fits one UDP packet
)

// wireAttach is one attachment entry on the wire.
type wireAttach struct {
	Node      string `json:"o"`
	Connector string `json:"c"`
	Group     string `json:"g,omitempty"`
	Boot      int64  `json:"b,omitempty"`
	Version   int64  `json:"v"`
	RTT       int64  `json:"r,omitempty"` // nanoseconds
	InFlight  int    `json:"f,omitempty"`
	Alive     bool   `json:"a,omitempty"`
	Draining  bool   `json:"d,omitempty"`
	Deleted   bool   `json:"x,omitempty"`
	Sig       []byte `json:"z,omitempty"` // by Node's node key, over the entry without Sig
}

// valid reports whether a received entry is well formed.
func (w *wireAttach) valid() bool {
	return w.Node != "" && len(w.Node) <= maxIDLen && w.Connector != "" && len(w.Connector) <= maxIDLen &&
		len(w.Group) <= maxIDLen && w.Version > 0 && w.RTT >= 0 && w.InFlight >= 0
}

// attachment converts the entry to its public form.
func (w *wireAttach) attachment() Attachment {
	return Attachment{Node: w.Node, Connector: w.Connector, Group: w.Group, RTT: time.Duration(w.RTT),
		InFlight: w.InFlight, Alive: w.Alive, Draining: w.Draining}
}

// wireLeave announces a graceful leave, so that receivers report "left"
// rather than "dead".
type wireLeave struct {
	ID   string `json:"i"`
	Boot int64  `json:"b,omitempty"`
}

// wireState is the push-pull state: everything we know.
type wireState struct {
	Attachments []wireAttach          `json:"a,omitempty"`
	Tokens      []authority.UsedToken `json:"t,omitempty"`
	Revocations []revoke.Record       `json:"r,omitempty"`
}

// encodeMsg prefixes the JSON form of v with kind.
func encodeMsg(kind byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return append([]byte{kind}, b...), nil
}

// decodeMsg parses the body of a message whose kind byte was checked.
func decodeMsg(b []byte, v any) error {
	if len(b) < 2 {
		return fmt.Errorf("decode message: %d bytes: %w", len(b), ErrInvalidArgument)
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode message kind %q: %w", b[0], err)
	}
	return nil
}

// keyedBroadcast is a broadcast that a newer one with the same key
// replaces in the queue (an attachment entry).
type keyedBroadcast struct {
	key string
	msg []byte
}

var _ memberlist.NamedBroadcast = (*keyedBroadcast)(nil)

// Invalidates reports whether b replaces o.
func (b *keyedBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*keyedBroadcast)
	return ok && ob.key == b.key
}

// Name returns the broadcast's key.
func (b *keyedBroadcast) Name() string { return b.key }

// Message returns the encoded message.
func (b *keyedBroadcast) Message() []byte { return b.msg }

// Finished is called when the broadcast leaves the queue.
func (b *keyedBroadcast) Finished() {}

// uniqueBroadcast is a broadcast that nothing replaces (tokens, leave).
type uniqueBroadcast struct {
	msg []byte
}

var _ memberlist.UniqueBroadcast = (*uniqueBroadcast)(nil)

// Invalidates is always false: unique broadcasts never replace others.
func (b *uniqueBroadcast) Invalidates(memberlist.Broadcast) bool { return false }

// UniqueBroadcast marks the broadcast unique.
func (b *uniqueBroadcast) UniqueBroadcast() {}

// Message returns the encoded message.
func (b *uniqueBroadcast) Message() []byte { return b.msg }

// Finished is called when the broadcast leaves the queue.
func (b *uniqueBroadcast) Finished() {}
