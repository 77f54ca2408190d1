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
			_ = s.HTTP.Close()
		}
		return nil
	})
	return g.Wait()
}

// Life is a runtime's lifetime: one Run, and one Close that ends a Run in
// progress and waits for it. The zero value is not usable; see NewLife.
type Life struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	closedErr error

	mu      sync.Mutex    // guards the following
	started bool          // Begin was called
	runDone chan struct{} // closed when the Run ends; nil before Begin
	closed  bool          // Close was called

	once     sync.Once
	closeErr error
}

// NewLife returns a Life whose Run, after Close, fails with closedErr.
func NewLife(closedErr error) *Life {
	l := &Life{closedErr: closedErr}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	return l
}

// Context ends, with cause the closed error, when Close is called.
func (l *Life) Context() context.Context { return l.ctx }

// Closed reports whether Close was called (also while it is still
// running first, before Context ends).
func (l *Life) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Begin starts the one Run: it returns ctx, ended also by Close, and end,
// which Run must call when it returns. It fails with the closed error
// after Close, and on a second Run.
func (l *Life) Begin(ctx context.Context) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, nil, l.closedErr
	case l.started:
		return nil, nil, errors.New("run: already started")
	}
	l.started = true
	done := make(chan struct{})
	l.runDone = done
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.ctx, func() { cancel(l.closedErr) })
	return ctx, func() { stop(); cancel(nil); close(done) }, nil
}

// Close ends the life once: it marks it closed, calls first (nil for
// none: what must go before a Run in progress notices, as the sockets in a
// crash), ends Context, waits for the Run to end, then calls then (nil for
// none), and returns their errors joined. Concurrent calls wait for the
// first; later ones return its result.
func (l *Life) Close(first, then func() error) error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		done := l.runDone
		l.mu.Unlock()
		var errs []error
		if first != nil {
			errs = append(errs, first())
		}
		l.cancel(l.closedErr)
		if done != nil {
			<-done
		}
		if then != nil {
			errs = append(errs, then())
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
