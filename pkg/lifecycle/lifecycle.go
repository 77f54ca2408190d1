// Package lifecycle holds what the runtimes (pkg/meshnode, pkg/connector)
// need to own resources and run servers without leaking or hanging: a
// close-on-error list of what a constructor acquired (Tailscale's wgengine
// keeps the same), and HTTP servers bound before they start and run under
// one errgroup, where the first failure stops them all and is returned.
//
// It sits beside the runtimes, below the mains; it imports no Postern
// package.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Closers is a close-on-error list: a constructor adds each resource it
// acquires, calls Close if a later step fails, and otherwise hands the
// list to its owner's Close. The zero value is empty and ready; it is safe
// for concurrent use.
type Closers struct {
	mu  sync.Mutex // guards the following
	fns []func() error
}

// Add appends close, which releases one resource.
func (c *Closers) Add(close func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, close)
}

// AddFunc appends close, a release that cannot fail.
func (c *Closers) AddFunc(close func()) {
	c.Add(func() error { close(); return nil })
}

// Close releases every resource in the reverse order of Add, each once,
// and returns their errors joined; net.ErrClosed (a listener an HTTP
// server already closed) is not an error. Later calls release only what
// was added since.
func (c *Closers) Close() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	var errs []error
	for _, fn := range slices.Backward(fns) {
		if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Server is an HTTP server with the listener it serves, bound before any
// server of its group starts.
type Server struct {
	// HTTP is the server; its Handler, TLSConfig and limits are set.
	HTTP *http.Server
	// Listener is bound already; the server closes it when it stops.
	Listener net.Listener
	// TLS serves TLS with HTTP.TLSConfig; false means plain HTTP.
	TLS bool
}

// serve serves until the server is shut down (nil) or fails (the error,
// naming the listener).
func (s Server) serve() error {
	var err error
	if s.TLS {
		err = s.HTTP.ServeTLS(s.Listener, "", "")
	} else {
		err = s.HTTP.Serve(s.Listener)
	}
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve %s: %w", s.Listener.Addr(), err)
}

// Serve runs servers under one errgroup until ctx ends or one of them
// fails. Then it calls stop with failed reporting a server failure (stop
// drains or shuts the servers down as it sees fit; with failed it should
// not wait for clients), closes every server still open, waits for all of
// them, and returns the first failure, or nil when ctx ended. Serve never
// waits for a server that nothing stops.
func Serve(ctx context.Context, servers []Server, stop func(failed bool)) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(s.serve)
	}
	g.Go(func() error {
		<-gctx.Done()
		stop(ctx.Err() == nil)
		for _, s := range servers {
			s.HTTP.Close()
		}
		return nil
	})
	return g.Wait()
}
