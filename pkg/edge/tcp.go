package edge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/session"
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
	conn := &userStream{Conn: websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary), id: st.id}
	h.streams.Add(conn)
	defer h.streams.Remove(conn)
	st.bytesUp, st.bytesDown = splice.Pipe(conn, back)
	if conn.cut.Load() {
		st.errReason = "cut: the identity was revoked"
	}
}

// userStream is the user's side of a TCP stream and the identity that
// opened it, so that a revocation can cut it.
type userStream struct {
	net.Conn
	id  *session.Identity
	cut atomic.Bool // closed because id was revoked
}

// CutRevoked closes every TCP stream whose identity is now revoked (its
// session, its user, or the application or workload of a bearer token)
// and returns how many it closed. A mesh node calls it whenever its
// deny-list grows: a revocation ends the streams already open, not only
// the next ones.
func (h *Handler) CutRevoked() int {
	if h.cfg.Denied == nil {
		return 0
	}
	return h.streams.CloseMatching(func(c io.Closer) bool {
		s, ok := c.(*userStream)
		if !ok {
			return false
		}
		why := h.revoked(s.id)
		if why == "" {
			return false
		}
		s.cut.Store(true)
		h.metrics.revokedRefusal(why, "tcp_stream")
		return true
	})
}

// openStream opens a TCP stream to app's target through a connector of its
// group (or a relay node): one GET that upgrades to the tunnel's TCP
// protocol, sent by the proxy's tunnel transport, so it is tried on
// another path exactly when a web request would be. A connector's refusal
// (not in its allow-list, target down) is an error; a lost connector cuts
// the stream.
func (h *Handler) openStream(ctx context.Context, app *catalog.App, st *reqState) (io.ReadWriteCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://connector/", nil)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {tunnelhttp.TCPProtocol},
		tunnelhttp.HeaderTarget: {tunnelhttp.TCPScheme + "://" + app.Target}, tunnelhttp.HeaderApp: {app.ID},
		tunnelhttp.HeaderRequestID: {st.rid}, "User-Agent": nil,
	}
	resp, err := h.proxy.Transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, &connectorError{code: resp.Header.Get(tunnelhttp.HeaderError)}
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, errors.New("the tunnel's answer to a TCP stream is not a stream")
	}
	return rwc, nil
}

// CloseStreams ends every TCP stream the edge carries; a mesh node calls
// it on shutdown (the HTTP server's Shutdown leaves upgraded connections
// alone).
func (h *Handler) CloseStreams() { h.streams.CloseAll() }
