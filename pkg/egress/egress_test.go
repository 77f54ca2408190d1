package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/tunnelhttp"

	"github.com/postern/postern/pkg/testkit"
)

func TestParseAllowList(t *testing.T) {
	al, err := ParseAllowList([]string{"intranet.corp", "*.apps.corp:8443", "10.0.0.0/8", "192.0.2.7:80", "[fd00::/8]:443", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	names := []struct {
		host string
		port uint16
		want bool
	}{
		{"intranet.corp", 80, true},
		{"INTRANET.corp.", 1, true},
		{"x.apps.corp", 8443, true},
		{"x.apps.corp", 443, false},
		{"apps.corp", 8443, false},
		{"evilintranet.corp", 80, false},
		{"other.corp", 80, false},
	}
	for _, c := range names {
		if got := al.AllowsName(c.host, c.port); got != c.want {
			t.Errorf("AllowsName(%s, %d): got %v, want %v", c.host, c.port, got, c.want)
		}
	}
	addrs := []struct {
		ap   string
		want bool
	}{
		{"10.1.2.3:22", true},
		{"11.1.2.3:80", false},
		{"192.0.2.7:80", true},
		{"192.0.2.7:81", false},
		{"[fd12::1]:443", true},
		{"[fd12::1]:80", false},
		{"[2001:db8::1]:9", true},
		{"[::ffff:10.0.0.1]:80", true},
	}
	for _, c := range addrs {
		if got := al.AllowsAddr(netip.MustParseAddrPort(c.ap)); got != c.want {
			t.Errorf("AllowsAddr(%s): got %v, want %v", c.ap, got, c.want)
		}
	}
	for _, bad := range []string{"", "a b", "10.0.0.0/8:0", "host:99999", "[fd00::/8", "exa mple.com", "*.", "http://x"} {
		if _, err := ParseAllowList([]string{bad}); err == nil {
			t.Errorf("entry %q accepted", bad)
		}
	}
	if !(AllowList{}).AllowsName("anything", 1) {
		t.Error("empty list must allow every name")
	}
}

// loopback is the allow-list of tests whose backends listen on 127.0.0.1.
func loopback(tb testing.TB) AllowList {
	tb.Helper()
	al, err := ParseAllowList([]string{"127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	return al
}

func TestSpecialDestinations(t *testing.T) {
	parse := func(entries ...string) AllowList {
		al, err := ParseAllowList(entries)
		if err != nil {
			t.Fatal(err)
		}
		return al
	}
	broad := parse("0.0.0.0/0", "::/0", "*.corp")
	tests := []struct {
		name string
		al   AllowList
		addr string
		want bool
	}{
		{"ordinary address, empty list", AllowList{}, "10.1.2.3:80", true},
		{"loopback, empty list", AllowList{}, "127.0.0.1:80", false},
		{"loopback elsewhere in 127/8", AllowList{}, "127.8.9.1:80", false},
		{"IPv6 loopback", AllowList{}, "[::1]:80", false},
		{"IPv4-mapped loopback", AllowList{}, "[::ffff:127.0.0.1]:80", false},
		{"unspecified reaches loopback", AllowList{}, "0.0.0.0:80", false},
		{"IPv6 unspecified", AllowList{}, "[::]:80", false},
		{"metadata", AllowList{}, "169.254.169.254:80", false},
		{"IPv6 metadata", AllowList{}, "[fd00:ec2::254]:80", false},
		{"NAT64 of metadata", AllowList{}, "[64:ff9b::a9fe:a9fe]:80", false},
		{"Alibaba metadata", AllowList{}, "100.100.100.200:80", false},
		{"Azure wire server", AllowList{}, "168.63.129.16:80", false},
		{"link-local", AllowList{}, "169.254.1.1:80", false},
		{"IPv6 link-local", AllowList{}, "[fe80::1]:80", false},
		{"loopback, broad rules", broad, "127.0.0.1:80", false},
		{"metadata, broad rules", broad, "169.254.169.254:80", false},
		{"ordinary, broad rules", broad, "198.51.100.1:80", true},
		{"loopback named", parse("127.0.0.1"), "127.0.0.1:80", true},
		{"loopback named with another port", parse("127.0.0.1:8080"), "127.0.0.1:80", false},
		{"loopback range named", parse("127.0.0.0/8"), "127.0.0.2:80", true},
		{"link-local range does not open metadata", parse("169.254.0.0/16"), "169.254.169.254:80", false},
		{"link-local range opens link-local", parse("169.254.0.0/16"), "169.254.1.1:80", true},
		{"metadata named", parse("169.254.169.254:80"), "169.254.169.254:80", true},
		{"IPv6 metadata named", parse("[fd00:ec2::254]"), "[fd00:ec2::254]:80", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.al.AllowsAddr(netip.MustParseAddrPort(tt.addr)); got != tt.want {
				t.Fatalf("AllowsAddr(%s): got %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	// A name that an allowed name rule covers but that resolves to a
	// special address is refused; the dialler never dials it.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	d := &dialer{allow: parse("localhost", "*.corp"), resolver: resolver}
	if _, err := d.DialContext(t.Context(), "tcp", "localhost:1"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("dial localhost by an allowed name: got %v, want %v", err, ErrNotAllowed)
	}
}

func serveTunnel(t *testing.T, cfg Config, target string, mod func(*http.Request)) *http.Response {
	t.Helper()
	h := New(cfg)
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/p?q=1", nil)
	req.Host = "app.example.com"
	if target != "" {
		req.Header.Set(tunnelhttp.HeaderTarget, target)
	}
	req.Header.Set(tunnelhttp.HeaderRequestID, "rid-1")
	if mod != nil {
		mod(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestForwardsToTarget(t *testing.T) {
	var got *http.Request
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		io.WriteString(w, "backend says hi")
	}))
	defer backend.Close()
	resp := serveTunnel(t, Config{AllowList: loopback(t)}, backend.URL+"/base", func(r *http.Request) {
		r.Header.Set("Postern-Sneaky", "x")
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
	})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "backend says hi" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got.URL.Path != "/base/p" || got.URL.RawQuery != "q=1" {
		t.Errorf("path: got %s?%s, want /base/p?q=1", got.URL.Path, got.URL.RawQuery)
	}
	if got.Host != "app.example.com" {
		t.Errorf("host: got %s, want app.example.com", got.Host)
	}
	if got.Header.Get("X-Request-Id") != "rid-1" {
		t.Errorf("request id not forwarded")
	}
	if got.Header.Get("X-Forwarded-For") != "203.0.113.9" {
		t.Errorf("X-Forwarded-For: got %q, want the mesh's value", got.Header.Get("X-Forwarded-For"))
	}
	for k := range got.Header {
		if strings.HasPrefix(strings.ToLower(k), "postern-") {
			t.Errorf("internal header %s reached the backend", k)
		}
	}
}

func TestErrors(t *testing.T) {
	closedAddr := testkit.RefusedAddr(t)
	tlsBackend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls ok") }))
	defer tlsBackend.Close()
	onlyTen, _ := ParseAllowList([]string{"10.0.0.0/8"})
	cases := []struct {
		name       string
		cfg        Config
		target     string
		skipVerify bool
		wantStatus int
		wantCode   string
	}{
		{"no target", Config{}, "", false, 400, tunnelhttp.ErrBadTarget},
		{"ftp target", Config{}, "ftp://x", false, 400, tunnelhttp.ErrBadTarget},
		{"refused", Config{AllowList: loopback(t)}, "http://" + closedAddr, false, 502, tunnelhttp.ErrBackendRefused},
		{"loopback not named", Config{}, "http://" + closedAddr, false, 502, tunnelhttp.ErrNotAllowed},
		{"not allowed", Config{AllowList: onlyTen}, "http://" + closedAddr, false, 502, tunnelhttp.ErrNotAllowed},
		{"not allowed by name", Config{AllowList: onlyTen}, "http://localhost:1", false, 502, tunnelhttp.ErrNotAllowed},
		{"untrusted cert", Config{AllowList: loopback(t)}, tlsBackend.URL, false, 502, tunnelhttp.ErrBackendTLS},
		{"skip verify", Config{AllowList: loopback(t)}, tlsBackend.URL, true, 200, ""},
		{"skip verify ignored for http", Config{AllowList: loopback(t)}, "http://" + closedAddr, true, 502, tunnelhttp.ErrBackendRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := serveTunnel(t, c.cfg, c.target, func(r *http.Request) {
				if c.skipVerify {
					r.Header.Set(tunnelhttp.HeaderTLSSkipVerify, "1")
				}
			})
			if resp.StatusCode != c.wantStatus || resp.Header.Get(tunnelhttp.HeaderError) != c.wantCode {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get(tunnelhttp.HeaderError), c.wantStatus, c.wantCode)
			}
		})
	}
}

func TestCustomRootCA(t *testing.T) {
	tlsBackend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls ok") }))
	defer tlsBackend.Close()
	pool := tlsBackend.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	resp := serveTunnel(t, Config{RootCAs: pool, AllowList: loopback(t)}, tlsBackend.URL, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200 with the CA configured", resp.StatusCode)
	}
}

// TestInFlight counts a request while its streaming body is still open and
// stops counting when it ends.
func TestInFlight(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "last")
	}))
	t.Cleanup(backend.Close)
	h := New(Config{AllowList: loopback(t)})
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if got := h.InFlight(); got != 0 {
		t.Fatalf("before: got %d, want 0", got)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/", nil)
	req.Header.Set(tunnelhttp.HeaderTarget, backend.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if got := h.InFlight(); got != 1 {
		t.Fatalf("while streaming: got %d, want 1", got)
	}
	close(release)
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := h.InFlight(); got != 0 {
		t.Fatalf("after: got %d, want 0", got)
	}
}
