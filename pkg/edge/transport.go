package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// Router chooses the path of each attempt of a request. *pool.Pool is the
// Router of a lone mesh node; a mesh node in a cluster adds relay paths
// through other nodes, as *pool.Connector entries whose tunnel address is
// the relay node's.
type Router interface {
	// Pick returns the path for the next attempt of a request to group,
	// skipping those in exclude; nil when there is none. It must be safe
	// for concurrent use and must not block.
	Pick(group string, exclude []*pool.Connector) *pool.Connector
	// MarkDead reports that a connection to c through the tunnel could not
	// be made.
	MarkDead(c *pool.Connector, reason string)
}

var _ Router = (*pool.Pool)(nil)

// tunnelTransport sends a request to a live connector of the app's group,
// bounding the time to the response headers by the app's backend timeout.
//
// A request is retried on another connector when it provably never reached
// the first one (no connection was obtained and no body byte was read), and,
// like Go's own Transport on a broken keep-alive connection, when the
// connector was lost before answering a request that is idempotent and has
// no body.
type tunnelTransport struct {
	router      Router
	maxAttempts int
}

func (t *tunnelTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(st.app.BackendTimeout, func() { cancel(errBackendTimeout) })
	var body *trackedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &trackedBody{r: req.Body}
	}
	var tried []*pool.Connector
	lastErr := errNoConnector
	anyReached := false
	for len(tried) < t.maxAttempts {
		c := t.router.Pick(st.app.ConnectorGroup, tried)
		if c == nil {
			break
		}
		tried = append(tried, c)
		st.attempts++
		resp, reached, err := t.attempt(ctx, req, c, body)
		if err == nil {
			if !timer.Stop() {
				resp.Body.Close()
				return nil, errBackendTimeout
			}
			st.connector = c.ID
			resp.Body = wrapBody(resp.Body, func() { cancel(nil) })
			return resp, nil
		}
		if cause := context.Cause(ctx); cause != nil {
			timer.Stop()
			return nil, fmt.Errorf("%w: %w", cause, err)
		}
		lastErr = err
		anyReached = anyReached || reached
		if !reached && !errors.Is(err, errRelayNoConnector) {
			t.router.MarkDead(c, "connect through the tunnel failed")
		}
		if !retryable(req, body, reached, err) {
			break
		}
	}
	timer.Stop()
	cancel(nil)
	if !anyReached && !errors.Is(lastErr, errNoConnector) {
		lastErr = fmt.Errorf("%w: %w", errNotSent, lastErr)
	}
	return nil, lastErr
}

// attempt sends req to c. reached reports whether a connection to c was
// obtained, after which the connector may have seen the request.
func (t *tunnelTransport) attempt(ctx context.Context, req *http.Request, c *pool.Connector, body *trackedBody) (*http.Response, bool, error) {
	c.Acquire()
	actx, acancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.Lost(), func() { acancel(pool.ErrConnectorLost) })
	var gotConn atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
	out := req.WithContext(httptrace.WithClientTrace(actx, trace))
	u := *req.URL
	u.Host = c.HostPort()
	out.URL = &u
	if body != nil {
		out.Body = body
	}
	resp, err := c.Transport.RoundTrip(out)
	if err == nil && resp.Header.Get(tunnelhttp.HeaderError) == tunnelhttp.ErrRelayNoConnector {
		// The relay node sent the request to none of its connectors.
		resp.Body.Close()
		resp, err = nil, errRelayNoConnector
		gotConn.Store(false)
	}
	if err == nil {
		cut := func() bool { return false }
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// Cancelling the request no longer reaches an upgraded
			// connection: a lost connector cuts it here.
			body := resp.Body
			cut = context.AfterFunc(c.Lost(), func() { body.Close() })
		}
		resp.Body = wrapBody(resp.Body, func() {
			cut()
			stop()
			acancel(nil)
			c.Release()
		})
		return resp, true, nil
	}
	cause := context.Cause(actx)
	stop()
	acancel(nil)
	c.Release()
	if errors.Is(cause, pool.ErrConnectorLost) {
		err = fmt.Errorf("%w: %w", pool.ErrConnectorLost, err)
	}
	return nil, gotConn.Load(), err
}

func retryable(req *http.Request, body *trackedBody, reached bool, err error) bool {
	if body != nil && body.n.Load() > 0 {
		return false // part of the body is gone; it cannot be sent again
	}
	if !reached {
		return true
	}
	return body == nil && errors.Is(err, pool.ErrConnectorLost) && idempotent(req.Method)
}

func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// trackedBody counts what the transport read of a request body and ignores
// Close, so an unread body can be sent to another connector. The original
// body is closed by the server when the handler returns.
type trackedBody struct {
	r io.ReadCloser
	n atomic.Int64
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *trackedBody) Close() error { return nil }

// wrapBody calls done once when body is closed. It keeps the io.Writer of a
// 101 Switching Protocols body, which ReverseProxy needs for upgrades.
func wrapBody(body io.ReadCloser, done func()) io.ReadCloser {
	b := &doneBody{ReadCloser: body, done: done}
	if w, ok := body.(io.ReadWriteCloser); ok {
		return &doneRWBody{doneBody: b, w: w}
	}
	return b
}

type doneBody struct {
	io.ReadCloser
	done   func()
	closed atomic.Bool
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed.CompareAndSwap(false, true) {
		b.done()
	}
	return err
}

type doneRWBody struct {
	*doneBody
	w io.Writer
}

func (b *doneRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
