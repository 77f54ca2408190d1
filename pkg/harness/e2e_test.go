package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/postern/postern/pkg/sampleapp"
	"github.com/postern/postern/pkg/testkit"
)

func start(tb testing.TB, opts Options) *Harness {
	tb.Helper()
	leaks := testkit.Goroutines()
	h, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		h.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		leaks(tb)
	})
	return h
}

func get(tb testing.TB, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), "GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, b
}

type headersReply struct {
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

func TestHeadersAndHostMapping(t *testing.T) {
	h := start(t, Options{})
	tr := h.MeshTransport(0)
	tr.ForceAttemptHTTP2 = false // HTTP/2 forbids Connection headers; test hop-by-hop removal on HTTP/1.1
	c := &http.Client{Transport: tr}
	resp, body := get(t, c, h.AppURL(0, "/headers"),
		"X-Forwarded-For", "6.6.6.6", "Forwarded", "for=6.6.6.6", "X-Real-Ip", "6.6.6.6",
		"Postern-Target", "http://169.254.169.254/", "X-Request-Id", "client-chosen",
		"Connection", "X-Hop", "X-Hop", "secret-hop")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200: %s", resp.StatusCode, body)
	}
	var got headersReply
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	hd := http.Header(got.Headers)
	if want := strings.TrimPrefix(h.App, "http://"); got.Host != want {
		t.Errorf("Host: got %q, want the internal host %q", got.Host, want)
	}
	if v := hd.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For: got %q, want 127.0.0.1", v)
	}
	if v := hd.Get("X-Forwarded-Proto"); v != "https" {
		t.Errorf("X-Forwarded-Proto: got %q, want https", v)
	}
	if v := hd.Get("X-Forwarded-Host"); !strings.HasPrefix(v, h.AppHost) {
		t.Errorf("X-Forwarded-Host: got %q", v)
	}
	if v := hd.Get("Forwarded"); !strings.HasPrefix(v, "for=127.0.0.1;host=") || !strings.HasSuffix(v, ";proto=https") {
		t.Errorf("Forwarded: got %q", v)
	}
	if v := hd.Get("X-Real-Ip"); v != "" {
		t.Errorf("client X-Real-Ip reached the backend: %q", v)
	}
	if v := hd.Get("X-Hop"); v != "" {
		t.Errorf("hop-by-hop header reached the backend: %q", v)
	}
	rid := hd.Get("X-Request-Id")
	if rid == "" || rid == "client-chosen" {
		t.Errorf("X-Request-Id: got %q, want one minted by the mesh", rid)
	}
	for k := range hd {
		if strings.HasPrefix(strings.ToLower(k), "postern-") {
			t.Errorf("internal header %s reached the backend", k)
		}
	}
}

func TestErrorPages(t *testing.T) {
	closed := testkit.RefusedAddr(t)
	// The backend timeout of the slow apps: short, but long enough for the
	// race detector's slowness.
	timeout := map[bool]time.Duration{false: 300 * time.Millisecond, true: 3 * time.Second}[raceDetector]
	// A backend that neither reads the request body nor answers until the
	// test ends.
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer stuck.Close()
	defer close(release)
	var logs SyncBuffer
	h := start(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	// Rewrite the catalogue with the extra apps now that the app URL is
	// known; the mesh picks it up live.
	cat := fmt.Sprintf(`connector_groups:
  - id: hq
  - id: empty
apps:
  - id: smartmoney
    host: %s
    internal_url: %s
    connector_group: hq
    preauth: passthrough
  - id: refused
    host: refused.localhost
    internal_url: http://%s
    connector_group: hq
    preauth: passthrough
  - id: orphan
    display_name: Orphan Ledger
    host: orphan.localhost
    internal_url: http://127.0.0.1:9
    connector_group: empty
    preauth: passthrough
  - id: slowapp
    host: slow.localhost
    internal_url: %s
    connector_group: hq
    preauth: passthrough
    backend_timeout: %v
    host_header: external
  - id: stuck
    host: stuck.localhost
    internal_url: %s
    connector_group: hq
    preauth: passthrough
    backend_timeout: %v
`, h.AppHost, h.App, closed, h.App, timeout, stuck.URL, timeout)
	swapCatalog(t, h, cat)
	c := h.MeshClient(0)
	_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
	u := func(host, path string) string { return "https://" + host + ":" + port + path }
	cases := []struct {
		name   string
		url    string
		status int
		reason string
		hidden []string // internal names the page must not show
	}{
		{"unknown host", u("nope.localhost", "/"), 404, "No application is published at nope.localhost:" + port, nil},
		{"backend refused", u("refused.localhost", "/"), 502, "refused the connection", nil},
		// The group's name is internal: the log has it, the page does not.
		{"no connector", u("orphan.localhost", "/"), 503, "Orphan Ledger cannot be reached right now", []string{"empty", "group", "orphan.localhost"}},
		{"backend timeout", u("slow.localhost", fmt.Sprintf("/slow?delay=%v", 10*timeout)), 504, fmt.Sprintf("slowapp did not answer within %v", timeout), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, c, tc.url, "Accept", "text/html")
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.reason) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.reason)
			}
			rid := resp.Header.Get("X-Request-Id")
			if rid == "" || !strings.Contains(string(body), rid) {
				t.Fatalf("request id %q not on the page", rid)
			}
			for _, leak := range append([]string{closed, "127.0.0.1:9", "goroutine", ".go:"}, tc.hidden...) {
				if strings.Contains(string(body), leak) {
					t.Fatalf("page leaks %q: %s", leak, body)
				}
			}
		})
	}
	// What the 503 page leaves out is in the access log line.
	if !strings.Contains(logs.String(), `"error":"no connector online (connector group empty)"`) {
		t.Errorf("access log: no line names the connector group of the 503:\n%s", logs.String())
	}
	t.Run("timeout bounds first byte only", func(t *testing.T) {
		resp, body := get(t, c, u("slow.localhost", fmt.Sprintf("/sse?n=4&interval=%v", timeout/2)))
		if resp.StatusCode != 200 || strings.Count(string(body), "data:") != 4 {
			t.Fatalf("got %d %q, want 4 events after the %v timeout", resp.StatusCode, body, timeout)
		}
	})
	t.Run("slow upload outlives the timeout", func(t *testing.T) {
		// The client takes over three times the backend timeout to send
		// the body; the backend answers at once when it has it. The
		// timeout must not count the client's time.
		const pieces, size = 10, 1 << 10
		pr, pw := io.Pipe()
		go func() {
			tick := time.NewTicker(timeout / 3)
			defer tick.Stop()
			for range pieces {
				<-tick.C
				if _, err := pw.Write(make([]byte, size)); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u("slow.localhost", "/upload"), pr)
		req.ContentLength = pieces * size
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var up sampleapp.UploadResult
		json.Unmarshal(body, &up)
		if resp.StatusCode != 200 || up.Bytes != pieces*size {
			t.Fatalf("got %d %q after %v, want 200 with %d bytes uploaded", resp.StatusCode, body, time.Since(began), pieces*size)
		}
	})
	t.Run("backend that stops taking the body times out", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u("stuck.localhost", "/"), sampleapp.Stream(3, 1<<30))
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 504 || !strings.Contains(string(body), fmt.Sprintf("did not answer within %v", timeout)) {
			t.Fatalf("got %d %q, want 504", resp.StatusCode, body)
		}
	})
	t.Run("external host header", func(t *testing.T) {
		_, body := get(t, c, u("slow.localhost", "/headers"))
		var got headersReply
		json.Unmarshal(body, &got)
		if got.Host != "slow.localhost:"+port {
			t.Fatalf("Host: got %q, want slow.localhost:%s", got.Host, port)
		}
	})
}

// swapCatalog writes a new catalogue and waits until the mesh serves it.
func swapCatalog(tb testing.TB, h *Harness, yaml string) {
	tb.Helper()
	old := h.Meshes()[0].Node.Catalog().Current().Hash()
	if err := os.WriteFile(h.CatalogPath+".new", []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(h.CatalogPath+".new", h.CatalogPath); err != nil {
		tb.Fatal(err)
	}
	err := WaitFor(tb.Context(), 10*time.Second, func() bool {
		return h.Meshes()[0].Node.Catalog().Current().Hash() != old
	})
	if err != nil {
		tb.Fatal("catalogue change not picked up")
	}
}

func TestBadCatalogueKeepsOld(t *testing.T) {
	h := start(t, Options{})
	c := h.MeshClient(0)
	before := h.Meshes()[0].Node.Catalog().Current().Hash()
	if err := os.WriteFile(h.CatalogPath, []byte("apps:\n  - id: x\n    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := h.Meshes()[0].Node.Catalog().Reload()
	if err == nil || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), ":3") {
		t.Fatalf("got %v, want an error naming the key and line 3", err)
	}
	if got := h.Meshes()[0].Node.Catalog().Current().Hash(); got != before {
		t.Fatal("bad catalogue replaced the good one")
	}
	if resp, _ := get(t, c, h.AppURL(0, "/hello")); resp.StatusCode != 200 {
		t.Fatalf("app not served after a bad reload: %d", resp.StatusCode)
	}
}

func TestWebSocketAndSSE(t *testing.T) {
	h := start(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+strings.TrimPrefix(h.AppURL(0, "/ws"), "https://"),
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: func() *http.Transport {
			tr := h.MeshTransport(0)
			tr.ForceAttemptHTTP2 = false
			return tr
		}()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("ping %d", i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// Server-sent events must arrive one by one, not at the end.
	resp, err := h.MeshClient(0).Get(h.AppURL(0, "/sse?n=3&interval=400ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var firstAt time.Time
	var lastSent int64
	events := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		events++
		var i, sent int64
		fmt.Sscanf(strings.TrimPrefix(line, "data: "), "%d %d", &i, &sent)
		if events == 1 {
			firstAt = time.Now()
		}
		lastSent = sent
	}
	if events != 3 {
		t.Fatalf("got %d events, want 3", events)
	}
	if firstAt.UnixNano() >= lastSent {
		t.Fatalf("first event arrived at %d, after the last was sent at %d: events were buffered", firstAt.UnixNano(), lastSent)
	}
}

func TestMetricsAndStatus(t *testing.T) {
	h := start(t, Options{})
	get(t, h.MeshClient(0), h.AppURL(0, "/hello"))
	rec := httptest.NewRecorder()
	h.Meshes()[0].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`postern_mesh_requests_total{app="smartmoney",code="200"} 1`,
		`postern_mesh_tunnel_peers{kind="connector"} 1`,
		`postern_mesh_connectors_online{group="hq"} 1`,
		`postern_mesh_peer_last_handshake_age_seconds{`,
		`postern_mesh_peer_last_handshake_timestamp_seconds{`,
		`postern_mesh_request_duration_seconds_bucket{app="smartmoney",code="200"`,
		"postern_catalog_loaded_timestamp_seconds 1.",
		"postern_catalog_reload_failures_total 0",
		"postern_catalog_reload_failing 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	mfs, err := h.Connectors()[0].Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	handshakeAt := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "postern_connector_last_handshake_timestamp_seconds" {
			handshakeAt = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if now := float64(time.Now().Unix()); handshakeAt < now-3600 || handshakeAt > now+60 {
		t.Errorf("connector's last handshake timestamp %v, want about now (%v)", handshakeAt, now)
	}
	st := h.Meshes()[0].Node.Status()
	if len(st.Connectors) != 1 || !st.Connectors[0].Alive {
		t.Fatalf("status: got %+v", st.Connectors)
	}
}

func TestReloadKeepsStreamsAndSpeaksHTTP2(t *testing.T) {
	h := start(t, Options{})
	c := h.MeshClient(0)
	resp, err := c.Get(h.AppURL(0, "/sse?n=5&interval=150ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("protocol: got %s, want HTTP/2.0 over TLS", resp.Proto)
	}
	sc := bufio.NewScanner(resp.Body)
	events := 0
	swapped := false
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "data:") {
			continue
		}
		events++
		if !swapped {
			// Change the catalogue while the stream is open.
			swapCatalog(t, h, fmt.Sprintf("connector_groups:\n  - id: hq\napps:\n  - id: smartmoney\n    host: %s\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n  - id: second\n    host: second.localhost\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n", h.AppHost, h.App, h.App))
			swapped = true
		}
	}
	if events != 5 {
		t.Fatalf("stream cut by the reload: got %d events, want 5 (%v)", events, sc.Err())
	}
	_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
	if r, _ := get(t, c, "https://second.localhost:"+port+"/hello"); r.StatusCode != 200 {
		t.Fatalf("new app not served after reload: %d", r.StatusCode)
	}
}
