package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/splice"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/upgrade"
)

// maxTCPMessage bounds one WebSocket message of a TCP stream; clients
// send at most 64 KiB per message.
const maxTCPMessage = 1 << 20

// serveTCP carries one connection of a TCP app: a WebSocket on
// catalog.TCPPath, authenticated by a bearer token (a command-line
// client's app token, an Entra access token or a trusted workload token)
// and allowed by the app's policy. The stream to the connector is opened
// first, so that a refusal (no connector, not in the allow-list, target
// down) is an HTTP error the client can show; then the WebSocket is
// accepted and joined to it until either side closes. The access line
// counts the payload bytes each way.
func (h *Handler) serveTCP(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) {
	if !upgrade.IsWebSocket(r) {
		h.writeUnauth(w, r, st, errpage.Page{Status: http.StatusBadRequest, Title: "Request refused",
			Reason: "A TCP stream opens with a WebSocket handshake (connectord access tcp).", RequestID: st.rid})
		return
	}
	if _, present, _ := bearerToken(r.Header); !present {
		h.bearerRefused(w, r, app, st, errors.New("a TCP stream needs a bearer token"))
		return
	}
	if st.id = h.authenticate(w, r, app, st); st.id == nil {
		return
	}
	st.tcp = true
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	back, err := h.openStream(ctx, app, st)
	if err != nil {
		h.proxyError(w, r.WithContext(ctx), err)
		return
	}
	defer back.Close()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		st.errReason = "websocket: " + err.Error()
		return
	}
	ws.SetReadLimit(maxTCPMessage)
	conn := websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary)
	h.streams.Add(conn)
	defer h.streams.Remove(conn)
	st.bytesUp, st.bytesDown = splice.Pipe(conn, back)
}

// openStream opens a TCP stream to app's target through a connector of its
// group (or a relay node), trying another path while none was reached.
func (h *Handler) openStream(ctx context.Context, app *catalog.App, st *reqState) (io.ReadWriteCloser, error) {
	var tried []*pool.Connector
	lastErr := errNoConnector
	anyReached := false
	for len(tried) < h.cfg.MaxAttempts {
		c := h.cfg.Router.Pick(app.ConnectorGroup, tried)
		if c == nil {
			break
		}
		tried = append(tried, c)
		st.attempts++
		s, reached, err := h.dialStream(ctx, c, app, st)
		if err == nil {
			st.connector = c.ID
			return s, nil
		}
		lastErr, anyReached = err, anyReached || reached
		if reached {
			break // the connector answered: its refusal stands
		}
		if !errors.Is(err, errRelayNoConnector) {
			h.cfg.Router.MarkDead(c, "connect through the tunnel failed")
		}
	}
	if !anyReached && !errors.Is(lastErr, errNoConnector) {
		lastErr = fmt.Errorf("%w: %w", errNotSent, lastErr)
	}
	return nil, lastErr
}

// dialStream asks connector (or relay node) c for a TCP stream; reached
// reports whether the request got a connection to c. The stream holds c
// (for load and drain accounting) until it is closed, and is cut when c
// is lost.
func (h *Handler) dialStream(ctx context.Context, c *pool.Connector, app *catalog.App, st *reqState) (io.ReadWriteCloser, bool, error) {
	c.Acquire()
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	timer := time.AfterFunc(app.BackendTimeout, func() { cancel(errBackendTimeout) })
	var gotConn atomic.Bool
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(sctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}), http.MethodGet, "http://"+c.HostPort()+"/", nil)
	if err != nil {
		timer.Stop()
		cancel(nil)
		c.Release()
		return nil, false, err
	}
	req.Header = http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {tunnelhttp.TCPProtocol},
		tunnelhttp.HeaderTarget: {tunnelhttp.TCPScheme + "://" + app.Target}, tunnelhttp.HeaderApp: {app.ID},
		tunnelhttp.HeaderRequestID: {st.rid}, "User-Agent": nil,
	}
	stopLost := context.AfterFunc(c.Lost(), func() { cancel(pool.ErrConnectorLost) })
	fail := func(err error) (io.ReadWriteCloser, bool, error) {
		timer.Stop()
		stopLost()
		if cause := context.Cause(sctx); cause != nil {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		cancel(nil)
		c.Release()
		return nil, gotConn.Load(), err
	}
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		code := resp.Header.Get(tunnelhttp.HeaderError)
		if code == tunnelhttp.ErrRelayNoConnector {
			gotConn.Store(false)
			return fail(errRelayNoConnector)
		}
		return fail(&connectorError{code: code})
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || !timer.Stop() {
		resp.Body.Close()
		return fail(errBackendTimeout)
	}
	stopLost()
	stopCut := context.AfterFunc(c.Lost(), func() { rwc.Close() })
	return &tunnelStream{ReadWriteCloser: rwc, done: func() {
		stopCut()
		cancel(nil)
		c.Release()
	}}, true, nil
}

// tunnelStream is a TCP stream through the tunnel; closing it releases
// its connector once.
type tunnelStream struct {
	io.ReadWriteCloser
	once sync.Once
	done func()
}

func (s *tunnelStream) Close() error {
	err := s.ReadWriteCloser.Close()
	s.once.Do(s.done)
	return err
}

// CloseStreams ends every TCP stream the edge carries; a mesh node calls
// it on shutdown (the HTTP server's Shutdown leaves upgraded connections
// alone).
func (h *Handler) CloseStreams() { h.streams.CloseAll() }
