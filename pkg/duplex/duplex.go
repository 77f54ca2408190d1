// Package duplex serves a proxied request full duplex, and keeps every
// read of its body inside the handler.
//
// A proxy must read the request body while it copies the response: an
// HTTP/1 server that is not told so consumes and closes the body when the
// response starts, and the transport, still forwarding it, then fails
// and cuts the response short (golang/go#15527). Full duplex has a price:
// an http.Transport may go on reading a request body after RoundTrip has
// returned (its write goroutine ends on its own time), so a read may
// outlive the handler and meet the server's own read of the connection —
// net/http panics then ("invalid concurrent Body.Read call"), outside any
// handler, and the process dies. Serve closes that gap: when the handler
// returns, a read in progress is ended and later ones fail.
package duplex

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrHandlerDone is returned by reads of a request body after its handler
// returned.
var ErrHandlerDone = errors.New("duplex: request body read after its handler returned")

// Serve enables full duplex on w and guards r.Body. Call the function it
// returns when the handler returns (defer it): it ends a read of the body
// still waiting for the client (by a read deadline in the past: that
// connection is then closed, as its body was not read to the end) and
// makes every later read fail with ErrHandlerDone.
func Serve(w http.ResponseWriter, r *http.Request) (done func()) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // HTTP/2 is always full duplex: ErrNotSupported there
	if r.Body == nil || r.Body == http.NoBody {
		return func() {}
	}
	b := &body{rc: r.Body}
	r.Body = b
	return func() { b.finish(rc) }
}

// body is a request body whose reads end with the handler.
type body struct {
	mu   sync.Mutex // held for the length of each Read
	rc   io.ReadCloser
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, ErrHandlerDone
	}
	return b.rc.Read(p)
}

// Close closes the server's body without waiting for a read in progress
// (the server's body orders them itself).
func (b *body) Close() error { return b.rc.Close() }

// past is a read deadline that has passed: it ends a blocked read at once.
var past = time.Unix(1, 0)

func (b *body) finish(rc *http.ResponseController) {
	if !b.mu.TryLock() {
		_ = rc.SetReadDeadline(past) // a read waits for the client: end it
		b.mu.Lock()
	}
	b.done = true
	b.mu.Unlock()
}
