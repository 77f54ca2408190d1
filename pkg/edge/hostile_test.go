package edge

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/edge/edgetest"
	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/upgrade"
	"github.com/postern/postern/pkg/wgkey"
)

const (
	testHome    = "3f6c1a2e-8b4d-4c7e-9a15-0d2b7e6f4c81"
	testPartner = "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"
	testOther   = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
)

// chain is an edge handler in front of a real connector handler (pkg/egress)
// in front of the lenient backend, all on loopback; only the WireGuard
// tunnel between edge and connector is replaced by a plain TCP dial.
type chain struct {
	h       *Handler
	edge    *httptest.Server
	backend *edgetest.Backend
	keys    *session.Keyset
	cat     *catalog.Catalog
}

func newChain(t *testing.T, tlsOn bool, limits Limits) *chain {
	t.Helper()
	return newTracedChain(t, tlsOn, limits, nil)
}

// newTracedChain is newChain with tracer (nil: tracing off) at the edge.
func newTracedChain(t *testing.T, tlsOn bool, limits Limits, tracer trace.Tracer) *chain {
	t.Helper()
	c := &chain{backend: edgetest.NewBackend(t)}
	al, err := egress.ParseAllowList([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	conn := httptest.NewServer(egress.New(egress.Config{AllowList: al}))
	t.Cleanup(conn.Close)
	doc := `home_tenant: ` + testHome + `
connector_groups:
  - id: hq
apps:
  - id: lenient
    host: lenient.example.com
    internal_url: ` + c.backend.URL + `
    connector_group: hq
    preauth: passthrough
  - id: pass
    host: pass.example.com
    internal_url: ` + c.backend.URL + `
    connector_group: hq
    preauth: passthrough
    pass_headers: [CF-Connecting-IP]
    hsts_max_age: 0
    trust_trace_headers: true
  - id: iis
    host: iis.example.com
    internal_url: ` + c.backend.URL + `
    connector_group: hq
    preauth: entra
    hsts_max_age: 1h
` + edgetest.IISPolicy + `  - id: lean
    host: lean.example.com
    internal_url: ` + c.backend.URL + `
    connector_group: hq
    preauth: entra
    identity_headers: {assertion: "", email: "", name: "", user: X-Lean-User}
    policy:
      allow: { roles: ["SmartMoney.User"] }
  - id: partner
    host: partner.example.com
    internal_url: ` + c.backend.URL + `
    connector_group: hq
    preauth: entra
    policy:
      allow: { roles: ["SmartMoney.User"], tenants: ["` + testPartner + `"] }
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
`
	cat, err := catalog.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c.cat = cat
	if c.keys, err = session.GenerateKeyset(); err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{}
	p := pool.New(pool.Config{Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", conn.Listener.Addr().String())
	}})
	t.Cleanup(p.Close)
	k, _ := wgkey.Generate()
	c1 := p.Upsert("c1", "hq", k.Public())
	v := session.NewVerifier(session.VerifierConfig{Static: c.keys.JWKS(), Issuer: "https://auth.example.com"})
	c.h = New(Config{Catalog: func() *catalog.Catalog { return cat }, Router: &orderedRouter{paths: []Path{c1}}, Limits: limits, Auth: &AuthConfig{
		AuthURL: testAuthURL, Verifier: v, Requests: testRequests(t), Cache: session.NewCache(v, 100)}, Tracer: tracer})
	if tlsOn {
		c.edge = httptest.NewTLSServer(c.h)
	} else {
		c.edge = httptest.NewServer(c.h)
	}
	t.Cleanup(c.edge.Close)
	return c
}

// token signs an app token of alice (home tenant) for host with the given
// roles and binding.
func (c *chain) token(t *testing.T, appID, host, binding string, roles ...string) string {
	return c.tokenOf(t, testHome, appID, host, binding, roles...)
}

// tokenOf signs an app token of a user of tenant tid.
func (c *chain) tokenOf(t *testing.T, tid, appID, host, binding string, roles ...string) string {
	t.Helper()
	now := time.Now()
	tok, err := c.keys.Sign(session.TypeApp, session.AppClaims{
		Identity: session.Identity{Subject: tid + "/alice", TenantID: tid, Name: "Alice", Roles: roles,
			AuthTime: now.Unix(), SessionID: "s1"},
		AppID: appID, Audience: host, Binding: binding, ReturnPath: "/", IssuedAt: now.Unix(),
		Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *chain) dial(t *testing.T) net.Conn {
	t.Helper()
	var conn net.Conn
	var err error
	if c.edge.TLS != nil {
		conn, err = tls.Dial("tcp", c.edge.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		conn, err = net.Dial("tcp", c.edge.Listener.Addr().String())
	}
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// raw sends head (request line and headers without Host), then Host, the
// extra lines, a blank line and body, on a new connection.
func (c *chain) raw(t *testing.T, head, host, body string, extra ...string) (*http.Response, net.Conn, io.Reader) {
	t.Helper()
	conn := c.dial(t)
	resp, br, err := edgetest.Raw(conn, edgetest.Request(head, host, body, extra...))
	if err != nil {
		t.Fatalf("request %q: %v", head, err)
	}
	return resp, conn, br
}

func cookieLine(tok string) string { return "Cookie: " + AppCookie + "=" + tok + "\r\n" }

// TestUpgradeHostile sends every refused upgrade to a passthrough app and
// to a pre-authenticated one with a valid cookie: the edge answers 400 and
// the lenient backend, which would switch to anything, reads nothing.
func TestUpgradeHostile(t *testing.T) {
	c := newChain(t, false, Limits{})
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, tt := range edgetest.UpgradeCases {
		for _, app := range []struct{ host, cookie string }{{"lenient.example.com", ""}, {"iis.example.com", cookieLine(tok)}} {
			t.Run(tt.Name+" "+app.host, func(t *testing.T) {
				c.backend.Reset()
				resp, _, _ := c.raw(t, tt.Head, app.host, tt.Body, app.cookie)
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("got %d, want 400", resp.StatusCode)
				}
				if got := c.backend.Requests(); len(got) != 0 {
					t.Fatalf("the backend read %d requests, want none: %+v", len(got), got)
				}
			})
		}
	}
}

// TestLenientBackendSpeaksH2C proves the test backend is as lenient as it
// claims: straight to it, an h2c upgrade without HTTP2-Settings gives raw
// HTTP/2 to any path. That is what the edge must never let a client reach.
func TestLenientBackendSpeaksH2C(t *testing.T) {
	b := edgetest.NewBackend(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, br, err := edgetest.Raw(conn, "GET /public HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &h2c, DialContext: func(context.Context, string, string) (net.Conn, error) {
		return &readConn{Conn: conn, r: br}, nil
	}}
	cc, err := tr.NewClientConn(t.Context(), "http", "x:80")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://x/admin", nil)
	req.Header.Set("X-Postern-User", "evil")
	r2, err := cc.RoundTrip(req)
	if err != nil || r2.StatusCode != 200 {
		t.Fatalf("h2c request: got %v %v", r2, err)
	}
	r2.Body.Close()
	got := b.Requests()
	if len(got) != 2 || !got[1].Upgraded || got[1].RequestURI != "/admin" || got[1].Header.Get("X-Postern-User") != "evil" {
		t.Fatalf("got %+v, want the upgraded /admin with the forged header", got)
	}
}

type readConn struct {
	net.Conn
	r io.Reader
}

func (c *readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestWebSocketPassesButNothingRides checks that a real WebSocket
// handshake passes, that a request written on the upgraded connection
// never reaches the backend (it is not a WebSocket frame), and that a 101
// without the right Sec-WebSocket-Accept (a backend tricked into switching)
// is refused.
func TestWebSocketPassesButNothingRides(t *testing.T) {
	c := newChain(t, false, Limits{})
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, app := range []struct{ host, cookie string }{{"lenient.example.com", ""}, {"iis.example.com", cookieLine(tok)}} {
		t.Run(app.host, func(t *testing.T) {
			c.backend.Reset()
			resp, conn, br := c.raw(t, edgetest.WebSocket, app.host, "", app.cookie)
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") != upgrade.AcceptKey(edgetest.WSKey) {
				t.Fatalf("handshake: got %d %v, want 101 with the accept key", resp.StatusCode, resp.Header)
			}
			// The backend switched, but reads HTTP: a request written now
			// would be read as one. It is not a WebSocket frame, so it
			// never gets there, and the connection is closed.
			conn.Write([]byte(edgetest.Smuggled))
			if _, err := io.ReadAll(br); err != nil && !isClosed(err) {
				t.Fatalf("read after the smuggled request: %v", err)
			}
			for _, r := range c.backend.Requests() {
				if r.Upgraded {
					t.Fatalf("a request rode the WebSocket connection to the backend: %+v", r)
				}
			}
			if got := c.backend.Requests(); len(got) != 1 || got[0].RequestURI != "/ws" {
				t.Fatalf("backend got %+v, want only the handshake", got)
			}
		})
	}
	t.Run("101 without accept", func(t *testing.T) {
		c.backend.Reset()
		head := strings.Replace(edgetest.WebSocket, "/ws", "/no-accept", 1)
		resp, conn, _ := c.raw(t, head, "lenient.example.com", "")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("got %d, want 502", resp.StatusCode)
		}
		// The connection stays an HTTP/1.1 connection to the edge: the
		// "smuggled" request is just the next request, for host x.
		if r2, _, err := edgetest.Raw(conn, edgetest.Smuggled); err == nil && r2.StatusCode != http.StatusNotFound {
			t.Fatalf("next request on the connection: got %d, want 404 (unknown host x)", r2.StatusCode)
		}
		for _, r := range c.backend.Requests() {
			if r.Upgraded {
				t.Fatalf("a request rode the refused upgrade: %+v", r)
			}
		}
	})
}

func isClosed(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed")
}

// TestHeadersHostile sends every hostile header to a passthrough app, to
// one that passes CF-Connecting-IP, and to a pre-authenticated app: none
// reaches the backend, except the passed name spelled exactly.
func TestHeadersHostile(t *testing.T) {
	c := newChain(t, false, Limits{})
	var b strings.Builder
	edgetest.SetHostile(&b)
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, tt := range []struct {
		host, cookie string
		allowed      []string
	}{
		{"lenient.example.com", "", nil},
		{"pass.example.com", "", []string{"CF-Connecting-IP"}},
		{"iis.example.com", cookieLine(tok), nil},
		// The assertion and some identity headers turned off, the user's
		// renamed: the client's copies of all of them still go.
		{"lean.example.com", cookieLine(c.token(t, "lean", "lean.example.com", "b", "SmartMoney.User")), nil},
	} {
		t.Run(tt.host, func(t *testing.T) {
			c.backend.Reset()
			resp, _, _ := c.raw(t, "GET /x HTTP/1.1\r\n", tt.host, "", b.String(), tt.cookie)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d, want 200", resp.StatusCode)
			}
			got := c.backend.Requests()
			if len(got) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(got))
			}
			h := got[0].Header
			if leaked := edgetest.Leaked(h, tt.allowed...); len(leaked) > 0 {
				t.Fatalf("client headers reached the backend: %v", leaked)
			}
			for _, a := range tt.allowed {
				if h.Get(a) != "evil" {
					t.Errorf("%s: got %q, want it passed through", a, h.Get(a))
				}
			}
			if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != tt.host {
				t.Errorf("forwarding headers: got %q %q %q", h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
			}
			user := "X-Postern-User"
			if tt.host == "lean.example.com" {
				user = "X-Lean-User"
				for _, k := range []string{"X-Postern-Assertion", "X-Postern-Email", "X-Postern-Name", "X-Postern-User"} {
					if v, ok := h[k]; ok {
						t.Errorf("%s reached the backend of an app that turned it off: %q", k, v)
					}
				}
			}
			if tt.cookie != "" && h.Get(user) != testHome+"/alice" {
				t.Errorf("%s: got %q, want the verified subject", user, h.Get(user))
			}
		})
	}
}

// TestPathsHostile sends the spellings of /admin to the IIS-mode app as a
// user without App.Admin.
func TestPathsHostile(t *testing.T) {
	c := newChain(t, false, Limits{})
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, tt := range edgetest.PathCases {
		t.Run(tt.Target, func(t *testing.T) {
			c.backend.Reset()
			resp, _, _ := c.raw(t, "GET "+tt.Target+" HTTP/1.1\r\n", "iis.example.com", "", cookieLine(tok))
			if resp.StatusCode != tt.Want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.Want)
			}
			got := c.backend.Requests()
			switch {
			case tt.Want == 200 && (len(got) != 1 || got[0].RequestURI != tt.Target):
				t.Fatalf("backend got %+v, want exactly %s", got, tt.Target)
			case tt.Want != 200 && len(got) != 0:
				t.Fatalf("backend got %+v, want nothing", got)
			}
		})
	}
	// Encoded control characters are refused for passthrough apps too.
	for _, target := range []string{"/x%00", "/x%0d%0aSet-Cookie:%20a=b", "/x%7f", "/x%C2%85"} {
		c.backend.Reset()
		resp, _, _ := c.raw(t, "GET "+target+" HTTP/1.1\r\n", "lenient.example.com", "")
		if resp.StatusCode != 400 || len(c.backend.Requests()) != 0 {
			t.Errorf("passthrough %s: got %d and %d backend requests, want 400 and none", target, resp.StatusCode, len(c.backend.Requests()))
		}
	}
}

// TestHSTSAndOwnPages checks Strict-Transport-Security on every HTTPS
// answer (the app's max-age, none where the app turns it off, the default
// for unknown hosts) and the hardening headers on the mesh's own pages.
func TestHSTSAndOwnPages(t *testing.T) {
	c := newChain(t, true, Limits{})
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	for _, tt := range []struct {
		name, head, host, cookie, hsts string
		own                            bool
	}{
		{"proxied", "GET /x HTTP/1.1\r\n", "lenient.example.com", "", catalog.DefaultHSTS, false},
		{"proxied, app max-age", "GET /x HTTP/1.1\r\n", "iis.example.com", cookieLine(tok), "max-age=3600", false},
		{"proxied, HSTS off", "GET /x HTTP/1.1\r\n", "pass.example.com", "", "", false},
		{"unknown host", "GET / HTTP/1.1\r\n", "nope.example.com", "", catalog.DefaultHSTS, true},
		{"sign-in redirect", "GET /x HTTP/1.1\r\nAccept: text/html\r\n", "iis.example.com", "", "max-age=3600", true},
		{"401", "GET /x HTTP/1.1\r\n", "iis.example.com", "", "max-age=3600", true},
		{"403", "GET /admin HTTP/1.1\r\n", "iis.example.com", cookieLine(tok), "max-age=3600", true},
		{"400", "GET /admin. HTTP/1.1\r\n", "iis.example.com", cookieLine(tok), "max-age=3600", true},
		{"postern 404", "GET /.postern/nope HTTP/1.1\r\n", "iis.example.com", "", "max-age=3600", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, _ := c.raw(t, tt.head, tt.host, "", tt.cookie)
			if got := resp.Header.Values("Strict-Transport-Security"); strings.Join(got, ",") != tt.hsts {
				t.Errorf("Strict-Transport-Security: got %q, want %q", got, tt.hsts)
			}
			if !tt.own {
				return
			}
			h := resp.Header
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" ||
				h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("status %d: hardening headers missing: %v", resp.StatusCode, h)
			}
		})
	}
}

// TestUnauthLimit drives one address past its budget of unauthenticated
// answers: it gets 429 with Retry-After, another address is still served,
// and a signed-in request from the limited address still passes.
func TestUnauthLimit(t *testing.T) {
	c := newChain(t, false, Limits{UnauthRate: 1, UnauthBurst: 5})
	tok := c.token(t, "iis", "iis.example.com", "b", "SmartMoney.User")
	serve := func(ip, host, path string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.Host, r.RemoteAddr = host, ip+":1234"
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, r)
		return w
	}
	kinds := []func(ip string) *httptest.ResponseRecorder{
		func(ip string) *httptest.ResponseRecorder {
			return serve(ip, "iis.example.com", "/x", "Accept", "text/html")
		}, // sign-in redirect
		func(ip string) *httptest.ResponseRecorder { return serve(ip, "iis.example.com", "/x") },             // 401
		func(ip string) *httptest.ResponseRecorder { return serve(ip, "nope.example.com", "/") },             // 404
		func(ip string) *httptest.ResponseRecorder { return serve(ip, "iis.example.com", "/.postern/nope") }, // 404
		func(ip string) *httptest.ResponseRecorder { return serve(ip, "lenient.example.com", "/x%00") },      // 400
	}
	for i, k := range kinds {
		if w := k("192.0.2.1"); w.Code == http.StatusTooManyRequests {
			t.Fatalf("answer %d within the burst: got 429", i)
		}
	}
	for i, k := range kinds {
		w := k("192.0.2.1")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("kind %d past the burst: got %d (Retry-After %q), want 429 with Retry-After", i, w.Code, w.Header().Get("Retry-After"))
		}
	}
	if w := kinds[0]("192.0.2.2"); w.Code != http.StatusFound {
		t.Fatalf("another address: got %d, want the sign-in redirect", w.Code)
	}
	if w := serve("192.0.2.1", "iis.example.com", "/x", "Cookie", AppCookie+"="+tok); w.Code != 200 {
		t.Fatalf("a signed-in request from the limited address: got %d, want 200", w.Code)
	}
	if w := serve("192.0.2.1", "iis.example.com", "/admin", "Cookie", AppCookie+"="+tok); w.Code != 403 {
		t.Fatalf("a denied signed-in request from the limited address: got %d, want 403", w.Code)
	}
}

// TestTwoTabsSignIn starts two sign-ins in one browser (two tabs) and
// completes them in either order: each has its own bind cookie.
func TestTwoTabsSignIn(t *testing.T) {
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		c := newChain(t, false, Limits{})
		jar := map[string]string{} // the browser's cookies for the host
		cookies := func() string {
			var parts []string
			for k, v := range jar {
				parts = append(parts, k+"="+v)
			}
			return strings.Join(parts, "; ")
		}
		serve := func(path string) *httptest.ResponseRecorder {
			r := httptest.NewRequest("GET", path, nil)
			r.Host, r.RemoteAddr = "iis.example.com", "192.0.2.9:1"
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Cookie", cookies())
			w := httptest.NewRecorder()
			c.h.ServeHTTP(w, r)
			for _, ck := range w.Result().Cookies() {
				if ck.MaxAge < 0 {
					delete(jar, ck.Name)
				} else {
					jar[ck.Name] = ck.Value
				}
			}
			return w
		}
		var bindings [2]string
		for i := range 2 {
			w := serve("/tab" + string(rune('1'+i)))
			loc, _ := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || loc == nil || loc.Path != "/authorize" {
				t.Fatalf("tab %d: got %d %q, want a sign-in redirect", i, w.Code, w.Header().Get("Location"))
			}
			bindings[i] = requestOf(t, loc).Binding
		}
		if bindings[0] == bindings[1] {
			t.Fatal("both tabs share one binding")
		}
		for _, i := range order {
			tok := c.token(t, "iis", "iis.example.com", bindings[i], "SmartMoney.User")
			if w := serve(CallbackPath + "?token=" + tok); w.Code != http.StatusFound {
				t.Fatalf("order %v: callback of tab %d: got %d %s", order, i, w.Code, w.Body)
			}
		}
		if w := serve("/x"); w.Code != 200 {
			t.Fatalf("after both sign-ins: got %d", w.Code)
		}
	}
}

// TestTenantsThroughTheEdge sends requests of users of three tenants with
// the same role values to an app whose rule accepts one partner tenant:
// roles count only from the home tenant and that partner, and the /admin
// rule (home only) refuses the partner's self-assigned admins.
func TestTenantsThroughTheEdge(t *testing.T) {
	c := newChain(t, false, Limits{})
	admin := []string{"SmartMoney.User", "SmartMoney.Admin"}
	for _, tt := range []struct {
		name, tid, path string
		want            int
	}{
		{"home admin on /admin", testHome, "/admin", 200},
		{"home user", testHome, "/x", 200},
		{"partner user", testPartner, "/x", 200},
		{"partner admin on /admin", testPartner, "/admin", 403},
		{"partner admin on /ADMIN/x", testPartner, "/ADMIN/x", 200}, // case-sensitive app: /ADMIN is another path
		{"other tenant's user", testOther, "/x", 403},
		{"other tenant's admin on /admin", testOther, "/admin", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.backend.Reset()
			tok := c.tokenOf(t, tt.tid, "partner", "partner.example.com", "b", admin...)
			resp, _, _ := c.raw(t, "GET "+tt.path+" HTTP/1.1\r\n", "partner.example.com", "", cookieLine(tok))
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if got := len(c.backend.Requests()); (tt.want == 200) != (got == 1) {
				t.Fatalf("backend got %d requests", got)
			}
		})
	}
}

// TestStrippedHeadersDocumented keeps README.md's list of stripped headers
// in step with the code.
func TestStrippedHeadersDocumented(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ToLower(string(b))
	for n := range strippedNames {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("README.md does not list the stripped header %s", n)
		}
	}
	for _, p := range strippedPrefixes {
		if !strings.Contains(doc, "`"+p) {
			t.Errorf("README.md does not list the stripped prefix %s*", p)
		}
	}
}
