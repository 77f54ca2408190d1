// Package edgetest holds what the hostile-input tests of the request path
// share: a deliberately lenient backend that records everything it is sent,
// a raw HTTP/1.1 client that sends exactly the bytes a test writes, and the
// tables of hostile requests (protocol upgrades, other proxies' headers,
// Windows path spellings). The package tests of pkg/edge run the tables
// against the edge and connector handlers on loopback; the end-to-end tests
// of pkg/harness run them through a real mesh node, WireGuard and
// connector. It is for tests only; nothing in a daemon imports it.
package edgetest

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/pkg/upgrade"
)

// Received is one request as a backend read it.
type Received struct {
	Method     string
	RequestURI string
	Header     http.Header
	// Upgraded is true for a request read from a connection after it
	// switched protocols: one that went past the edge's checks.
	Upgraded bool
}

// Backend is a deliberately lenient backend. It answers any request with
// 200 and a JSON echo of what it got, and it accepts any protocol upgrade:
// for "h2c" it answers 101 and serves HTTP/2 on the connection (whatever
// the HTTP2-Settings); for anything else it answers 101 — with a correct
// Sec-WebSocket-Accept, unless the path is /no-accept — and then reads the
// connection as further HTTP/1.1 requests, as a backend tricked into
// switching protocols would. Every request it reads, before or after a
// switch, is recorded.
type Backend struct {
	// URL is the backend's base URL, http://127.0.0.1:port.
	URL string

	srv *httptest.Server
	mu  sync.Mutex // guards the following
	got []Received
}

// NewBackend starts a Backend on loopback, closed by tb's cleanup.
func NewBackend(tb testing.TB) *Backend {
	b := &Backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	b.URL = b.srv.URL
	tb.Cleanup(b.srv.Close)
	return b
}

// Requests returns what the backend has read so far.
func (b *Backend) Requests() []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.got...)
}

// Reset forgets what the backend has read.
func (b *Backend) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = nil
}

func (b *Backend) record(r *http.Request, upgraded bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, Received{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Upgraded: upgraded})
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	b.record(r, false)
	if up := r.Header.Get("Upgrade"); up != "" {
		b.switchProtocols(w, r, up)
		return
	}
	echo(w, r)
}

func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "uri": r.RequestURI, "headers": r.Header})
}

func (b *Backend) switchProtocols(w http.ResponseWriter, r *http.Request, up string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + up + "\r\n"
	if k := r.Header.Get("Sec-WebSocket-Key"); k != "" && r.URL.Path != "/no-accept" {
		resp += "Sec-WebSocket-Accept: " + upgrade.AcceptKey(k) + "\r\n"
	}
	if _, err := brw.WriteString(resp + "\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	after := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.record(r, true)
		echo(w, r)
	})
	if strings.EqualFold(up, "h2c") {
		serveH2C(&bufferedConn{Conn: conn, r: brw.Reader}, after)
		return
	}
	for {
		req, err := http.ReadRequest(brw.Reader)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		after(rec, req)
		if err := rec.Result().Write(conn); err != nil {
			return
		}
	}
}

// serveH2C serves HTTP/2 with prior knowledge on conn with h until the
// connection ends: net/http's server on a listener that yields conn once.
func serveH2C(conn net.Conn, h http.Handler) {
	l := &oneConnListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
	l.conns <- conn
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			_ = l.Close() // closing the one-connection listener never fails
		}
	}}
	_ = srv.Serve(l) // returns net.ErrClosed once the connection ended
}

// oneConnListener hands out one connection, then blocks until Close.
type oneConnListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// bufferedConn reads first what a bufio.Reader already holds.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Request builds the text of a request from head (request line and headers
// without Host, "{host}" standing for host), the Host header, extra header
// lines, the blank line and body.
func Request(head, host, body string, extra ...string) string {
	return strings.ReplaceAll(head, "{host}", host) + "Host: " + host + "\r\n" + strings.Join(extra, "") + "\r\n" + body
}

// Raw writes req, the text of an HTTP/1.1 request, on conn and reads the
// response. The reader it returns holds what followed the response head.
func Raw(conn net.Conn, req string) (*http.Response, *bufio.Reader, error) {
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	return resp, br, err
}
