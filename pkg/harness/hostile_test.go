package harness

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/edge/edgetest"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/upgrade"
)

const (
	lenientHost = "lenient.localhost"
	iisHost     = "iis.localhost"
	passHost    = "pass.localhost"
)

// hostileSystem is a harness with sign-in whose catalogue adds three apps
// in front of the lenient backend: a passthrough app, one that passes
// CF-Connecting-IP, and a pre-authenticated IIS-mode app (edgetest's
// IISPolicy). alice is signed in to the IIS app.
type hostileSystem struct {
	h       *Harness
	backend *edgetest.Backend
	cookie  string // alice's app cookie on iisHost
}

func startHostile(t *testing.T, limits meshnode.Limits) *hostileSystem {
	t.Helper()
	b := edgetest.NewBackend(t)
	apps := `  - id: lenient
    host: ` + lenientHost + `
    internal_url: ` + b.URL + `
    connector_group: hq
    preauth: passthrough
  - id: pass
    host: ` + passHost + `
    internal_url: ` + b.URL + `
    connector_group: hq
    preauth: passthrough
    pass_headers: [CF-Connecting-IP]
  - id: iis
    host: ` + iisHost + `
    internal_url: ` + b.URL + `
    connector_group: hq
    preauth: entra
` + edgetest.IISPolicy
	h := start(t, Options{Auth: true, ExtraCatalog: apps, Limits: limits})
	s := &hostileSystem{h: h, backend: b}
	c := h.Browser()
	_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
	resp, body, err := Navigate(t.Context(), c, "https://"+iisHost+":"+port+"/hello", "alice", "")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("alice's sign-in to %s: %v %v %s", iisHost, resp, err, body)
	}
	u, _ := url.Parse("https://" + iisHost + ":" + port + "/")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "__Host-postern" {
			s.cookie = "Cookie: __Host-postern=" + ck.Value + "\r\n"
		}
	}
	if s.cookie == "" {
		t.Fatal("no app cookie for the IIS app")
	}
	b.Reset()
	return s
}

// dial opens a TLS connection (HTTP/1.1) to mesh node 0 from the local
// address from ("" = any).
func (s *hostileSystem) dial(t *testing.T, host, from string) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := tls.DialWithDialer(d, "tcp", s.h.Meshes()[0].Addr, &tls.Config{RootCAs: s.h.CA.Pool(), ServerName: host, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// raw sends head (request line and headers, without Host), Host, extra
// lines, a blank line and body through the real edge.
func (s *hostileSystem) raw(t *testing.T, head, host, body string, extra ...string) (*http.Response, net.Conn, io.Reader) {
	t.Helper()
	conn := s.dial(t, host, "")
	_, port, _ := net.SplitHostPort(s.h.Meshes()[0].Addr)
	resp, br, err := edgetest.Raw(conn, edgetest.Request(head, host+":"+port, body, extra...))
	if err != nil {
		t.Fatalf("%q: %v", head, err)
	}
	return resp, conn, br
}

// TestHostileThroughTheMesh runs the hostile tables of pkg/edge/edgetest
// through a real mesh node, WireGuard and connector to the lenient
// backend, checking both the answer and what the backend read.
func TestHostileThroughTheMesh(t *testing.T) {
	s := startHostile(t, meshnode.Limits{})
	apps := []struct{ host, cookie string }{{lenientHost, ""}, {iisHost, s.cookie}}

	t.Run("upgrades", func(t *testing.T) {
		for _, tt := range edgetest.UpgradeCases {
			for _, app := range apps {
				s.backend.Reset()
				resp, _, _ := s.raw(t, tt.Head, app.host, tt.Body, app.cookie)
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s on %s: got %d, want 400", tt.Name, app.host, resp.StatusCode)
				}
				if got := s.backend.Requests(); len(got) != 0 {
					t.Errorf("%s on %s: the backend read %+v, want nothing", tt.Name, app.host, got)
				}
			}
		}
	})

	t.Run("nothing rides a websocket", func(t *testing.T) {
		for _, app := range apps {
			s.backend.Reset()
			resp, conn, br := s.raw(t, edgetest.WebSocket, app.host, "", app.cookie)
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") != upgrade.AcceptKey(edgetest.WSKey) {
				t.Fatalf("%s: handshake got %d %v, want 101", app.host, resp.StatusCode, resp.Header)
			}
			conn.Write([]byte(edgetest.Smuggled))
			io.Copy(io.Discard, br) // until the mesh closes the connection
			for _, r := range s.backend.Requests() {
				if r.Upgraded {
					t.Fatalf("%s: a request rode the WebSocket connection to the backend: %+v", app.host, r)
				}
			}
		}
		s.backend.Reset()
		head := strings.Replace(edgetest.WebSocket, "/ws", "/no-accept", 1)
		if resp, _, _ := s.raw(t, head, lenientHost, ""); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("101 without Sec-WebSocket-Accept: got %d, want 502", resp.StatusCode)
		}
	})

	t.Run("headers", func(t *testing.T) {
		var b strings.Builder
		edgetest.SetHostile(&b)
		for _, tt := range []struct {
			host, cookie string
			allowed      []string
		}{{lenientHost, "", nil}, {passHost, "", []string{"CF-Connecting-IP"}}, {iisHost, s.cookie, nil}} {
			s.backend.Reset()
			resp, _, _ := s.raw(t, "GET /x HTTP/1.1\r\n", tt.host, "", b.String(), tt.cookie)
			got := s.backend.Requests()
			if resp.StatusCode != 200 || len(got) != 1 {
				t.Fatalf("%s: got %d and %d backend requests, want 200 and 1", tt.host, resp.StatusCode, len(got))
			}
			if leaked := edgetest.Leaked(got[0].Header, tt.allowed...); len(leaked) > 0 {
				t.Errorf("%s: client headers reached the backend: %v", tt.host, leaked)
			}
			for _, a := range tt.allowed {
				if got[0].Header.Get(a) != "evil" {
					t.Errorf("%s: %s not passed through", tt.host, a)
				}
			}
			if h := got[0].Header; h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("%s: forwarding headers %q %q, want the mesh's", tt.host, h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"))
			}
		}
	})

	t.Run("paths", func(t *testing.T) {
		for _, tt := range edgetest.PathCases {
			s.backend.Reset()
			resp, _, _ := s.raw(t, "GET "+tt.Target+" HTTP/1.1\r\n", iisHost, "", s.cookie)
			got := s.backend.Requests()
			switch {
			case resp.StatusCode != tt.Want:
				t.Errorf("%s: got %d, want %d", tt.Target, resp.StatusCode, tt.Want)
			case tt.Want == 200 && (len(got) != 1 || got[0].RequestURI != tt.Target):
				t.Errorf("%s: backend read %+v, want exactly the target", tt.Target, got)
			case tt.Want != 200 && len(got) != 0:
				t.Errorf("%s: backend read %+v, want nothing", tt.Target, got)
			}
		}
	})
}

// TestLimitsThroughTheMesh drives one address (127.0.0.1) past its budget
// of unauthenticated answers and past its connection cap, and checks that
// another address (127.0.0.2) is still served.
func TestLimitsThroughTheMesh(t *testing.T) {
	const burst, conns = 20, 6
	s := startHostile(t, meshnode.Limits{ConnsPerClient: conns, Unauth: edgeLimits(burst)})
	_, port, _ := net.SplitHostPort(s.h.Meshes()[0].Addr)
	get := func(conn net.Conn, host, path, extra string) *http.Response {
		t.Helper()
		resp, br, err := edgetest.Raw(conn, "GET "+path+" HTTP/1.1\r\nHost: "+host+":"+port+"\r\nAccept: text/html\r\n"+extra+"\r\n")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, io.LimitReader(br, resp.ContentLength))
		return resp
	}
	// Unauthenticated answers: sign-in redirects and 404s, on one
	// keep-alive connection.
	c1 := s.dial(t, iisHost, "127.0.0.1")
	var limited *http.Response
	for i := 0; i < 3*burst && limited == nil; i++ {
		path, host := "/x", iisHost
		if i%2 == 1 {
			host = "nope.localhost"
		}
		if r := get(c1, host, path, ""); r.StatusCode == http.StatusTooManyRequests {
			limited = r
		} else if r.StatusCode != http.StatusFound && r.StatusCode != http.StatusNotFound {
			t.Fatalf("answer %d: got %d, want a sign-in redirect or 404", i, r.StatusCode)
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("never limited after %d unauthenticated answers (or no Retry-After): %v", 3*burst, limited)
	}
	if r := get(s.dial(t, iisHost, "127.0.0.2"), iisHost, "/x", ""); r.StatusCode != http.StatusFound {
		t.Fatalf("another address: got %d, want the sign-in redirect", r.StatusCode)
	}
	if r := get(c1, iisHost, "/x", s.cookie); r.StatusCode != 200 {
		t.Fatalf("signed-in request from the limited address: got %d, want 200", r.StatusCode)
	}
	// Connections: c1 and conns-1 more are held open; the next is told 429.
	for range conns - 1 {
		get(s.dial(t, iisHost, "127.0.0.1"), iisHost, "/x", s.cookie)
	}
	over := get(s.dial(t, iisHost, "127.0.0.1"), iisHost, "/x", s.cookie)
	if over.StatusCode != http.StatusTooManyRequests || over.Header.Get("Retry-After") == "" {
		t.Fatalf("connection past the cap: got %d (Retry-After %q), want 429 with Retry-After", over.StatusCode, over.Header.Get("Retry-After"))
	}
	if r := get(s.dial(t, iisHost, "127.0.0.2"), iisHost, "/x", s.cookie); r.StatusCode != 200 {
		t.Fatalf("another address while the first is capped: got %d, want 200", r.StatusCode)
	}
	// A header block past 64 KiB is refused (from the other address, whose
	// connections are not capped).
	big := "X-Big: " + strings.Repeat("a", 80<<10) + "\r\n"
	if r := get(s.dial(t, iisHost, "127.0.0.2"), iisHost, "/x", big+s.cookie); r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("an 80 KiB header: got %d, want 431", r.StatusCode)
	}
	if r := get(s.dial(t, iisHost, "127.0.0.2"), iisHost, "/x", "X-Big: "+strings.Repeat("a", 32<<10)+"\r\n"+s.cookie); r.StatusCode != 200 {
		t.Fatalf("a 32 KiB header: got %d, want 200", r.StatusCode)
	}
	pub, _ := s.h.Meshes()[0].Node.Conns()
	if n, _ := pub.Open(); n > conns+4 {
		t.Fatalf("%d connections held open, want at most %d (cap %d from one address, 4 from another)", n, conns+4, conns)
	}
}

// TestTLSOnlyAEAD checks that the public listener refuses TLS 1.2 CBC and
// SHA-1 suites and speaks an AEAD one, and that HTTPS answers carry
// Strict-Transport-Security.
func TestTLSOnlyAEAD(t *testing.T) {
	h := start(t, Options{})
	addr := h.Meshes()[0].Addr
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: h.CA.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			conn.Close()
			t.Errorf("TLS 1.2 with %s: handshake succeeded, want refused", tls.CipherSuiteName(suite))
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: h.CA.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 with the default suites: %v", err)
	}
	defer conn.Close()
	if st := conn.ConnectionState(); !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "GCM") && !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "CHACHA20") {
		t.Fatalf("negotiated %s, want an AEAD suite", tls.CipherSuiteName(st.CipherSuite))
	}
	resp, _ := get(t, h.MeshClient(0), h.AppURL(0, "/hello"))
	if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("Strict-Transport-Security: got %q, want the default", resp.Header.Get("Strict-Transport-Security"))
	}
}

func edgeLimits(burst int) edge.Limits { return edge.Limits{UnauthRate: 0.5, UnauthBurst: burst} }

// TestTunnelTimeouts checks that the mesh node closes tunnel connections
// that send no request, and keep-alive ones left idle, after its timeouts.
func TestTunnelTimeouts(t *testing.T) {
	h := start(t, Options{Limits: meshnode.Limits{IdleTimeout: time.Second, ReadHeaderTimeout: time.Second}})
	node := h.Meshes()[0].Node
	target := net.JoinHostPort(node.WireGuard().Addr().String(), "80")
	dial := func() net.Conn {
		t.Helper()
		c, err := h.Connectors()[0].C.Node().DialContext(t.Context(), "tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedByNode reads from c until the node closes it (or 30s pass).
	closedByNode := func(c net.Conn) bool {
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, c)
			close(done)
		}()
		select {
		case <-done:
			return true
		case <-time.After(30 * time.Second):
			c.Close()
			return false
		}
	}
	if !closedByNode(dial()) {
		t.Fatal("a tunnel connection that sent nothing was not closed")
	}
	c := dial()
	resp, br, err := edgetest.Raw(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, io.LimitReader(br, resp.ContentLength))
	if !closedByNode(c) {
		t.Fatal("an idle keep-alive tunnel connection was not closed")
	}
	_, tunnel := node.Conns()
	if err := WaitFor(t.Context(), 10*time.Second, func() bool { n, _ := tunnel.Open(); return n == 0 }); err != nil {
		t.Fatal("tunnel connections still counted after the node closed them")
	}
}
