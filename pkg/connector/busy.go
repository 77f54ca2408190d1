package connector

import (
	"net"
	"net/http"
	"sync"
)

// connTracker counts the in-tunnel server's busy connections: accepted and
// not yet idle (a request is on its way in or being served), so that a
// drain sees a request from the moment its connection is accepted, before
// the handler runs. Its track method is an http.Server ConnState hook.
type connTracker struct {
	mu   sync.Mutex // guards the following
	busy map[net.Conn]bool
}

func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateNew, http.StateActive:
		if t.busy == nil {
			t.busy = map[net.Conn]bool{}
		}
		t.busy[c] = true
	default: // idle, hijacked (the handler counts it), closed
		delete(t.busy, c)
	}
}

// n returns the number of busy connections.
func (t *connTracker) n() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.busy)
}
