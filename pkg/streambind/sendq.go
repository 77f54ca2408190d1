package streambind

import (
	"io"
	"sync"
	"sync/atomic"
)

// sendQueue is a stream's bounded send buffer. Send appends frames to the
// pending buffer and never blocks; frames that do not fit are dropped, as a
// full UDP socket buffer would drop them, so a slow stream never stalls
// WireGuard or other peers. One writer goroutine swaps the pending buffer
// for its spare one and writes everything queued in one Write: many
// frames per system call while the stream is busy, one frame per call
// when it is idle.
type sendQueue struct {
	limit   int
	ready   chan struct{} // holds a token while pending is non-empty
	dropped atomic.Uint64

	mu      sync.Mutex // guards the following
	pending []byte
	closed  bool
}

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push queues every packet of bufs that fits and reports how many it
// dropped.
func (q *sendQueue) push(bufs [][]byte) int {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return len(bufs)
	}
	wasEmpty := len(q.pending) == 0
	dropped := 0
	for _, b := range bufs {
		if len(b) > MaxFrame || len(q.pending)+FrameHeader+len(b) > q.limit {
			dropped++
			continue
		}
		q.pending = AppendFrame(q.pending, b)
	}
	signal := wasEmpty && len(q.pending) > 0
	q.mu.Unlock()
	if signal {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	if dropped > 0 {
		q.dropped.Add(uint64(dropped))
	}
	return dropped
}

// close makes push drop everything from now on.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.pending = nil
	q.mu.Unlock()
}

// writeLoop writes queued frames to w until done closes or a write fails.
func (q *sendQueue) writeLoop(w io.Writer, done <-chan struct{}) error {
	var spare []byte
	for {
		select {
		case <-done:
			return nil
		case <-q.ready:
		}
		q.mu.Lock()
		out := q.pending
		q.pending = spare[:0]
		q.mu.Unlock()
		if len(out) == 0 {
			spare = out
			continue
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		spare = out
	}
}
