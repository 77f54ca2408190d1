package connector

import (
	"net"
	"net/http"
	"sync"
)

// connTracker counts the in-tunnel server's busy connections: those that
// have read the first byte of a request and not yet gone idle, so that a
// drain sees a request from its first byte, before the handler runs. A
// connection that is only open (a mesh node dials ahead of need, or keeps
// it idle) carries no request. The mesh node's own count covers requests
// still on their way (Node.Detach). Its track method is an http.Server
// ConnState hook.
type connTracker struct {
	mu   sync.Mutex // guards the following
	busy map[net.Conn]bool
}

func (t *connTracker) track(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateActive:
		if t.busy == nil {
			t.busy = map[net.Conn]bool{}
		}
		t.busy[c] = true
	default: // new (nothing read yet), idle, hijacked (the handler counts it), closed
		delete(t.busy, c)
	}
}

// n returns the number of busy connections.
func (t *connTracker) n() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.busy)
}
