package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/postern/postern/pkg/splice"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// isTCP reports whether a tunnel request asks for a TCP stream: its target
// has the tcp scheme.
func isTCP(h http.Header) bool {
	return strings.HasPrefix(h.Get(tunnelhttp.HeaderTarget), tunnelhttp.TCPScheme+"://")
}

// tcpTarget checks a TCP stream request and returns its host:port: a GET
// without a body that upgrades to tunnelhttp.TCPProtocol and nothing else.
func tcpTarget(r *http.Request) (string, error) {
	up := r.Header["Upgrade"]
	switch {
	case r.Method != http.MethodGet || r.ContentLength != 0 || len(r.TransferEncoding) > 0:
		return "", errors.New("a TCP stream opens with a GET without a body")
	case len(up) != 1 || !strings.EqualFold(up[0], tunnelhttp.TCPProtocol):
		return "", errors.New("a TCP stream upgrades to " + tunnelhttp.TCPProtocol)
	case !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade"):
		return "", errors.New("an Upgrade header without \"upgrade\" in Connection")
	}
	target := strings.TrimPrefix(r.Header.Get(tunnelhttp.HeaderTarget), tunnelhttp.TCPScheme+"://")
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" || strings.ContainsAny(target, "/?#@") {
		return "", errors.New("the target must be tcp://host:port")
	}
	return target, nil
}

// serveTCP carries one TCP stream: it dials the target through the
// allow-list, answers 101, and joins the tunnel connection to the target
// until either side closes, then logs one line with the bytes each way.
func (h *Handler) serveTCP(w http.ResponseWriter, r *http.Request, rid string, start time.Time) {
	target, err := tcpTarget(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, tunnelhttp.ErrBadTarget)
		h.logger.Warn("bad_target", "request_id", rid, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.DialTimeout)
	back, err := h.dialer.DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		code := classify(err)
		h.logger.Warn("tcp_refused", "request_id", rid, "target", target, "code", code, "error", err)
		writeError(w, http.StatusBadGateway, code)
		return
	}
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", tunnelhttp.TCPProtocol)
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		h.logger.Warn("tcp_hijack_failed", "request_id", rid, "error", err)
		return
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		back.Close()
		return
	}
	up := &bufferedConn{Conn: conn, r: brw.Reader}
	h.streams.Add(up)
	defer h.streams.Remove(up)
	toTarget, fromTarget := splice.Pipe(up, back)
	h.logger.Info("tcp_stream", "request_id", rid, "target", target, "bytes_up", toTarget, "bytes_down", fromTarget,
		"duration_ms", msSince(start))
}

// bufferedConn reads what the HTTP server buffered before the hijack
// first.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
