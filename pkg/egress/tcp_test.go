package egress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// echoServer echoes on 127.0.0.1 until the test ends.
func echoServer(tb testing.TB) string {
	tb.Helper()
	return testkit.Listen(tb, func(c net.Conn) { io.Copy(c, c) })
}

// rawRequest sends req (a raw HTTP/1.1 request) to the handler and
// returns the connection and the response.
func rawRequest(tb testing.TB, srv *httptest.Server, req string) (net.Conn, *http.Response, *bufio.Reader) {
	tb.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c, resp, br
}

func TestTCPStreams(t *testing.T) {
	target := echoServer(t)
	_, port, _ := net.SplitHostPort(target)
	al, err := ParseAllowList([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{AllowList: al})
	srv := httptest.NewServer(h)
	defer srv.Close()
	stream := func(target, extra string) string {
		return "GET / HTTP/1.1\r\nHost: connector\r\nConnection: Upgrade\r\nUpgrade: postern-tcp\r\n" +
			tunnelhttp.HeaderTarget + ": tcp://" + target + "\r\n" + extra + "\r\n"
	}
	t.Run("allowed", func(t *testing.T) {
		c, resp, br := rawRequest(t, srv, stream(target, "")+"early bytes|")
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != tunnelhttp.TCPProtocol {
			t.Fatalf("got %d %v, want 101 %s", resp.StatusCode, resp.Header, tunnelhttp.TCPProtocol)
		}
		io.WriteString(c, "and more")
		got := make([]byte, len("early bytes|and more"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "early bytes|and more" {
			t.Fatalf("echo: got %q, %v", got, err)
		}
		if h.InFlight() != 1 {
			t.Errorf("in flight: got %d, want 1", h.InFlight())
		}
		h.Close() // ends the stream
		if _, err := br.ReadByte(); err == nil {
			t.Error("stream open after Close")
		}
	})
	for _, tc := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"loopback not named", stream("127.0.0.2:"+port, ""), 502, tunnelhttp.ErrNotAllowed},
		{"metadata address", stream("169.254.169.254:80", ""), 502, tunnelhttp.ErrNotAllowed},
		{"no port", stream("127.0.0.1", ""), 400, tunnelhttp.ErrBadTarget},
		{"a path in the target", stream("127.0.0.1:"+port+"/x", ""), 400, tunnelhttp.ErrBadTarget},
		{"websocket upgrade to a TCP target", strings.Replace(stream(target, ""), "postern-tcp", "websocket", 1), 400, tunnelhttp.ErrBadTarget},
		{"POST", strings.Replace(stream(target, "Content-Length: 1\r\n")+"x", "GET", "POST", 1), 400, tunnelhttp.ErrBadTarget},
		{"TCP upgrade to a web target", "GET / HTTP/1.1\r\nHost: c\r\nConnection: Upgrade\r\nUpgrade: postern-tcp\r\n" +
			tunnelhttp.HeaderTarget + ": http://" + target + "\r\n\r\n", 400, tunnelhttp.ErrUpgradeRefused},
		{"nothing listening", stream("127.0.0.1:1", ""), 502, tunnelhttp.ErrBackendRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{AllowList: al})
			srv := httptest.NewServer(h)
			defer srv.Close()
			_, resp, _ := rawRequest(t, srv, tc.req)
			if resp.StatusCode != tc.status || resp.Header.Get(tunnelhttp.HeaderError) != tc.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get(tunnelhttp.HeaderError), tc.status, tc.code)
			}
		})
	}
}
