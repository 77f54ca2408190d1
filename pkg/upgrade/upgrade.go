// Package upgrade decides which HTTP protocol upgrades may cross the mesh:
// only WebSocket (RFC 6455), and on the upgraded connection only WebSocket
// frames from the client.
//
// An upgraded connection is a raw byte pipe past everything the edge
// checks per request (path rules, identity-header stripping): a backend
// that accepts "Upgrade: h2c" would take any number of HTTP/2 requests on
// it, and a backend made to answer 101 without speaking WebSocket would
// read the client's next bytes as fresh HTTP requests. So both ends of the
// tunnel — the mesh node's edge (pkg/edge) and the connector (pkg/egress) —
// check the opening handshake with [CheckRequest] before forwarding it,
// check the backend's 101 with [CheckResponse] (its Sec-WebSocket-Accept
// proves that the backend read this WebSocket handshake), and wrap the
// backend side with [Guard], which passes only well-formed, masked client
// frames and nothing after a close frame. HTTP2-Settings is never
// forwarded ([StripH2C]).
//
// The package is pure: no I/O of its own, no goroutines.
package upgrade

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel errors.
var (
	// ErrRefused means a request asks for a protocol upgrade that may not
	// pass, or a backend answered with one.
	ErrRefused = errors.New("protocol upgrade refused")
	// ErrFrame means the client sent bytes on an upgraded connection that
	// are not a well-formed WebSocket client frame.
	ErrFrame = errors.New("not a websocket client frame")
)

// websocketGUID is the fixed GUID of RFC 6455 §1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Requested reports whether h asks for any protocol upgrade: an Upgrade
// header, an "upgrade" token in Connection, or an HTTP2-Settings header.
// It costs three map lookups and does not allocate.
func Requested(h http.Header) bool {
	if _, ok := h["Upgrade"]; ok {
		return true
	}
	if _, ok := h["Http2-Settings"]; ok {
		return true
	}
	for _, v := range h["Connection"] {
		if hasToken(v, "upgrade") {
			return true
		}
	}
	return false
}

// IsWebSocket reports whether r asks for an upgrade that [CheckRequest]
// accepts.
func IsWebSocket(r *http.Request) bool { return Requested(r.Header) && CheckRequest(r) == nil }

// CheckRequest returns nil for a request that asks for no upgrade at all,
// or for a well-formed WebSocket opening handshake (RFC 6455 §4.1): GET,
// HTTP/1.1, no body, "Upgrade: websocket" and nothing else, "upgrade" in
// Connection, Sec-WebSocket-Version 13 and a Sec-WebSocket-Key of 16
// bytes. It refuses every other upgrade (h2c, TLS, anything), an
// HTTP2-Settings header and the CONNECT method (which would open a tunnel
// too), with an error wrapping [ErrRefused].
func CheckRequest(r *http.Request) error {
	if r.Method == http.MethodConnect {
		return fmt.Errorf("%w: CONNECT opens a tunnel", ErrRefused)
	}
	h := r.Header
	if !Requested(h) {
		return nil
	}
	up := h["Upgrade"]
	switch {
	case len(h["Http2-Settings"]) > 0:
		return fmt.Errorf("%w: HTTP2-Settings (h2c) is never forwarded", ErrRefused)
	case len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket"):
		return fmt.Errorf("%w: only websocket upgrades pass, got %q", ErrRefused, strings.Join(up, ", "))
	case !connectionUpgrade(h):
		return fmt.Errorf("%w: Upgrade without \"upgrade\" in Connection", ErrRefused)
	case r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor != 1:
		return fmt.Errorf("%w: a websocket handshake is an HTTP/1.1 GET", ErrRefused)
	case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
		return fmt.Errorf("%w: a websocket handshake has no body", ErrRefused)
	case len(h["Sec-Websocket-Version"]) != 1 || h["Sec-Websocket-Version"][0] != "13":
		return fmt.Errorf("%w: Sec-WebSocket-Version must be 13", ErrRefused)
	}
	if _, err := key(h); err != nil {
		return err
	}
	return nil
}

func key(h http.Header) (string, error) {
	k := h["Sec-Websocket-Key"]
	if len(k) != 1 {
		return "", fmt.Errorf("%w: want exactly one Sec-WebSocket-Key", ErrRefused)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(k[0])
	if err != nil || len(b) != 16 {
		return "", fmt.Errorf("%w: Sec-WebSocket-Key must be 16 bytes in base64", ErrRefused)
	}
	return k[0], nil
}

func connectionUpgrade(h http.Header) bool {
	for _, v := range h["Connection"] {
		if hasToken(v, "upgrade") {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds token, ignoring
// ASCII case and spaces, without allocating.
func hasToken(v, token string) bool {
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// CheckResponse checks a backend's 101 Switching Protocols answer to req,
// the handshake as forwarded: req must be a WebSocket handshake, and the
// answer must switch to websocket with the Sec-WebSocket-Accept that
// req's key yields (RFC 6455 §4.2.2), which a backend only sends after
// reading the handshake as one. It returns an error wrapping [ErrRefused]
// otherwise.
func CheckResponse(req *http.Request, resp *http.Response) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	if !Requested(req.Header) {
		return fmt.Errorf("%w: the backend switched protocols unasked", ErrRefused)
	}
	if err := CheckRequest(req); err != nil {
		return err
	}
	if up := resp.Header["Upgrade"]; len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket") {
		return fmt.Errorf("%w: the backend switched to %q, not websocket", ErrRefused, strings.Join(up, ", "))
	}
	if !connectionUpgrade(resp.Header) {
		return fmt.Errorf("%w: the backend's 101 lacks \"Connection: upgrade\"", ErrRefused)
	}
	k, _ := key(req.Header)
	if acc := resp.Header["Sec-Websocket-Accept"]; len(acc) != 1 || acc[0] != AcceptKey(k) {
		return fmt.Errorf("%w: the backend's Sec-WebSocket-Accept does not answer the key", ErrRefused)
	}
	return nil
}

// GuardResponse checks a backend's answer to the forwarded request
// resp.Request: anything but a 101 passes; a 101 must pass CheckResponse,
// and its connection (resp.Body) is then wrapped with Guard. On refusal it
// closes the body and returns an error wrapping [ErrRefused]. It is an
// httputil.ReverseProxy ModifyResponse step.
func GuardResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	err := CheckResponse(resp.Request, resp)
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if err == nil && !ok {
		err = fmt.Errorf("%w: the upgraded connection is not writable", ErrRefused)
	}
	if err != nil {
		resp.Body.Close()
		return err
	}
	resp.Body = Guard(rwc, Extensions(resp))
	return nil
}

// AcceptKey returns the Sec-WebSocket-Accept value for a handshake key.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Extensions reports whether resp negotiated any WebSocket extension,
// which may then use the frames' reserved bits (permessage-deflate sets
// RSV1).
func Extensions(resp *http.Response) bool {
	for _, v := range resp.Header["Sec-Websocket-Extensions"] {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// StripH2C removes the HTTP2-Settings header, which only an h2c upgrade
// uses and which never crosses the mesh.
func StripH2C(h http.Header) { delete(h, "Http2-Settings") }
