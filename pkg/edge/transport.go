package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// tunnelTransport sends a request to a live connector of the app's group,
// bounding the time to the response headers by the app's backend timeout
// (see backendTimer: the time spent waiting for the client's request body
// does not count).
//
// A request is retried on another connector when it provably never reached
// the first one (no connection was obtained and no body byte was read), and,
// like Go's own Transport on a broken keep-alive connection, when the
// connector was lost before answering a request that is idempotent and has
// no body. Such a request is also sent again, at once, when its connector
// becomes suspect (a probe went unanswered) while it waits for the answer
// and another path is there: it does not wait for the connector to be
// declared dead.
type tunnelTransport struct {
	router      Router
	maxAttempts int
	tracer      trace.Tracer  // nil: tracing is off
	ids         *identityMemo // nil: identity blocks always go in full
}

func (t *tunnelTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := newBackendTimer(st.app.BackendTimeout, func() { cancel(errBackendTimeout) })
	var body *trackedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &trackedBody{r: req.Body, timer: timer}
	}
	var tried []Path
	lastErr := errNoConnector
	anyReached := false
	resendable := body == nil && idempotent(req.Method)
	var next Path     // picked when a suspect path was abandoned
	var leftBy []Path // paths abandoned only because they were suspect
	for len(tried) < t.maxAttempts {
		c := next
		if c == nil {
			c = t.router.Pick(st.app.ConnectorGroup, tried)
		}
		if c == nil {
			// Suspicion is a guess (a probe is late): when every other
			// path has failed, one left for it is tried again if it was
			// not declared lost since.
			c, leftBy = revisit(leftBy)
		}
		if c == nil {
			if t.tracer != nil {
				noPath(req.Context())
			}
			break
		}
		tried = append(tried, c)
		st.attempts++
		var watch *suspectWatch
		if resendable {
			watch = &suspectWatch{group: st.app.ConnectorGroup, exclude: slices.Clone(tried), router: t.router}
		}
		resp, reached, err := t.attempt(ctx, req, c, body, timer, watch)
		next = watch.alternative()
		if next != nil {
			leftBy = append(leftBy, c)
		}
		if err == nil {
			if timer.finish() {
				resp.Body.Close()
				return nil, errBackendTimeout
			}
			st.connector = c.String()
			resp.Body = wrapBody(resp.Body, func() { cancel(nil) })
			if resp.StatusCode != http.StatusSwitchingProtocols { // an upgrade's body must stay writable
				resp.Body = accesslog.RecordCut(resp.Body, &st.cutErr)
			}
			return resp, nil
		}
		if cause := context.Cause(ctx); cause != nil {
			timer.finish()
			return nil, fmt.Errorf("%w: %w", cause, err)
		}
		lastErr = err
		anyReached = anyReached || reached
		if !reached && !errors.Is(err, errRelayNoConnector) && !errors.Is(err, errPathClosed) {
			t.router.MarkDead(c, "connect through the tunnel failed")
		}
		if !retryable(req, body, reached, err) {
			break
		}
	}
	timer.finish()
	cancel(nil)
	if !anyReached && !errors.Is(lastErr, errNoConnector) {
		lastErr = fmt.Errorf("%w: %w", errNotSent, lastErr)
	}
	return nil, lastErr
}

// identityForm returns how an attempt on c carries st's identity block:
// plain when there is none or c is a relay, by reference when c holds it
// and the request has no body to send again if c answers that it does not,
// in full otherwise.
func (t *tunnelTransport) identityForm(st *reqState, c Path, body *trackedBody) identityForm {
	if t.ids == nil || len(st.ident.values) == 0 {
		return identityPlain
	}
	if _, ok := c.(ConnectorPath); !ok {
		return identityPlain
	}
	if body == nil && t.ids.held(c, st.ident.Digest(st.app.ID)) {
		return identityRef
	}
	return identityFull
}

// revisit returns the first path of left that is not lost, and left
// without it (and without those lost); nil when there is none.
func revisit(left []Path) (Path, []Path) {
	for i, c := range left {
		if c.Lost().Err() == nil {
			return c, left[i+1:]
		}
	}
	return nil, nil
}

// attempt sends req to c. reached reports whether a connection to c was
// obtained, after which the connector may have seen the request.
// watch, when not nil, abandons the attempt if c becomes suspect before
// the answer comes.
func (t *tunnelTransport) attempt(ctx context.Context, req *http.Request, c Path, body *trackedBody, timer *backendTimer, watch *suspectWatch) (*http.Response, bool, error) {
	if !c.TryAcquire() {
		return nil, false, errPathClosed // it began draining since the pick
	}
	actx, acancel := context.WithCancelCause(ctx)
	stopLost := context.AfterFunc(c.Lost(), func() { acancel(errLost) })
	stopWatch := watch.arm(c, acancel)
	stop := func() { stopLost(); stopWatch() }
	var gotConn atomic.Bool
	ct := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
		// The whole request is sent: the backend timeout now bounds the
		// wait for the first byte of the response.
		WroteRequest: func(httptrace.WroteRequestInfo) { timer.run() },
	}
	octx := httptrace.WithClientTrace(actx, ct)
	out := req.WithContext(octx)
	st := stateOf(req.Context())
	form := t.identityForm(st, c, body)
	out.Header = st.ident.header(req.Header, st.app.ID, form, st.attempts == 1)
	if t.tracer != nil {
		injectAttempt(out)
	}
	u := *req.URL
	out.URL = &u // c.Send sets the host
	if body != nil {
		out.Body = body
	}
	resp, err := c.Send(out)
	if form == identityRef && err == nil && resp.Header.Get(tunnelhttp.HeaderError) == tunnelhttp.ErrIdentityUnknown {
		// The connector no longer holds the block (restarted, or
		// dropped it): the backend never saw the request, which has no
		// body; send it again in full.
		resp.Body.Close()
		t.ids.forget(c, st.ident.Digest(st.app.ID))
		form = identityFull
		out.Header = st.ident.header(req.Header, st.app.ID, form, false)
		if t.tracer != nil {
			injectAttempt(out)
		}
		resp, err = c.Send(out)
	}
	if form == identityFull && err == nil && resp.Header.Get(tunnelhttp.HeaderIdentity) == st.ident.Digest(st.app.ID) {
		t.ids.hold(c, st.ident.Digest(st.app.ID))
	}
	if !watch.answered() {
		// Abandoned as its connector became suspect: it goes elsewhere.
		if err == nil {
			resp.Body.Close()
		}
		resp, err = nil, errSuspect
	}
	if err == nil && resp.Header.Get(tunnelhttp.HeaderError) == tunnelhttp.ErrRelayNoConnector {
		// The relay node sent the request to none of its connectors.
		resp.Body.Close()
		resp, err = nil, errRelayNoConnector
		gotConn.Store(false)
	}
	if err != nil && t.tracer != nil {
		attemptFailed(octx, c, err)
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
	if errors.Is(cause, errLost) && !errors.Is(err, errLost) {
		err = fmt.Errorf("%w: %w", errLost, err)
	}
	return nil, gotConn.Load(), err
}

// retryable reports whether a request whose attempt failed with err may
// be sent again: never once part of its body is gone; always when it never
// reached a connector; and, when it did, only if it is idempotent, has no
// body, and its connector was lost or became suspect before answering.
func retryable(req *http.Request, body *trackedBody, reached bool, err error) bool {
	if body != nil && body.n.Load() > 0 {
		return false // part of the body is gone; it cannot be sent again
	}
	if !reached {
		return true
	}
	return body == nil && (errors.Is(err, errLost) || errors.Is(err, errSuspect)) && idempotent(req.Method)
}

// suspectWatch abandons an attempt of a request that may be sent again
// (idempotent, no body) when its connector becomes suspect before the
// answer comes and another path is there to take it. The methods of a nil
// *suspectWatch do nothing.
type suspectWatch struct {
	group   string
	exclude []Path
	router  Router

	next  Path         // the other path; written before state turns abandoned
	state atomic.Int32 // watchWaiting, watchAnswered or watchAbandoned
}

const (
	watchWaiting = iota
	watchAnswered
	watchAbandoned
)

// arm watches c for the attempt whose context cancel ends; it returns the
// function that stops watching. A connector already suspect when the
// attempt starts was chosen as the last resort: it is not watched.
func (w *suspectWatch) arm(c Path, cancel context.CancelCauseFunc) (stop func() bool) {
	if w == nil || c.Suspect().Err() != nil {
		return func() bool { return false }
	}
	return context.AfterFunc(c.Suspect(), func() {
		next := w.router.Pick(w.group, w.exclude)
		if next == nil {
			return // nowhere else to go: wait for the answer or the loss
		}
		w.next = next
		if w.state.CompareAndSwap(watchWaiting, watchAbandoned) {
			cancel(errSuspect)
		}
	})
}

// answered marks the attempt answered unless it was abandoned already,
// and reports whether it was answered.
func (w *suspectWatch) answered() bool {
	return w == nil || w.state.CompareAndSwap(watchWaiting, watchAnswered) || w.state.Load() == watchAnswered
}

// alternative returns the path picked when the attempt was abandoned.
func (w *suspectWatch) alternative() Path {
	if w == nil || w.state.Load() != watchAbandoned {
		return nil
	}
	return w.next
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
// body is closed by the server when the handler returns. While a Read
// waits for the client, the backend timer is paused: a slow upload is the
// client's time, not the backend's.
type trackedBody struct {
	r     io.ReadCloser
	n     atomic.Int64
	timer *backendTimer
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.timer.pause()
	n, err := b.r.Read(p)
	b.timer.run()
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

// backendTimer bounds the time the backend side of a request may take: it
// runs while the request waits for a connection, for its bytes to be taken
// by the tunnel, and, once the whole request is sent, for the first byte of
// the response; it is paused while the transport waits for the client to
// send more of the request body, and every resume starts it afresh. So a
// slow upload never times out, but a backend that stops taking the body, or
// sends no answer, does after the app's backend timeout.
type backendTimer struct {
	d time.Duration
	t *time.Timer

	mu    sync.Mutex // guards the following
	done  bool       // finished: the response arrived or the attempt ended
	fired bool
}

// newBackendTimer returns a running timer that calls onFire after d unless
// paused or finished first.
func newBackendTimer(d time.Duration, onFire func()) *backendTimer {
	b := &backendTimer{d: d}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.t = time.AfterFunc(d, func() {
		b.mu.Lock()
		if b.done {
			b.mu.Unlock()
			return
		}
		b.done, b.fired = true, true
		b.mu.Unlock()
		onFire()
	})
	return b
}

// run (re)starts the full duration, unless the timer finished.
func (b *backendTimer) run() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.t.Reset(b.d)
	}
}

// pause stops the timer until the next run.
func (b *backendTimer) pause() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.t.Stop()
	}
}

// finish stops the timer for good and reports whether it had fired.
func (b *backendTimer) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	b.t.Stop()
	return b.fired
}
