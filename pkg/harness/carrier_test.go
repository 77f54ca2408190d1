package harness

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/streambind/proxytest"
	"github.com/postern/postern/pkg/wgkey"
)

// Outbound UDP is blocked in process (wgnet.BlockBind drops every datagram
// of the connector both ways), an equivalent of a firewall that lets only
// TCP out.

func carrierOf(h *Harness, i int) streambind.Carrier {
	for _, c := range h.Connectors()[i].C.Carriers() {
		return c
	}
	return ""
}

func meshCarrier(h *Harness) string {
	st := h.Meshes()[0].Node.Status()
	if len(st.Connectors) == 0 {
		return ""
	}
	return st.Connectors[0].Carrier
}

func wantHello(t *testing.T, h *Harness, n int) {
	t.Helper()
	c := h.MeshClient(0)
	for range n {
		if resp, body := get(t, c, h.AppURL(0, "/hello")); resp.StatusCode != 200 {
			t.Fatalf("status: got %d, want 200: %s", resp.StatusCode, body)
		}
	}
}

func TestFallbackToStreamAndBack(t *testing.T) {
	h := start(t, Options{Connectors: -1, BlockUDP: true, ProbeInterval: 500 * time.Millisecond})
	began := time.Now()
	if _, err := h.AddConnector(t.Context(), "hq"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(began); el > 5*time.Second {
		t.Fatalf("attached over the stream after %v, want within 5s", el)
	}
	if got := carrierOf(h, 0); got != streambind.CarrierStream {
		t.Fatalf("carrier with UDP blocked: got %q, want stream", got)
	}
	wantHello(t, h, 20)
	if got := meshCarrier(h); got != "stream" {
		t.Fatalf("mesh status carrier: got %q, want stream", got)
	}
	rec := httptest.NewRecorder()
	h.Meshes()[0].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`postern_mesh_connector_carrier{carrier="stream"`, "postern_mesh_stream_carriers 1"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("mesh metrics lack %s", want)
		}
	}

	h.SetUDPBlocked(0, false)
	if err := WaitFor(t.Context(), 15*time.Second, func() bool { return carrierOf(h, 0) == streambind.CarrierUDP }); err != nil {
		t.Fatalf("carrier after UDP came back: got %q, want udp", carrierOf(h, 0))
	}
	if err := WaitFor(t.Context(), 5*time.Second, func() bool { return meshCarrier(h) == "udp" }); err != nil {
		t.Fatalf("mesh status carrier: got %q, want udp", meshCarrier(h))
	}
	wantHello(t, h, 20)
	if got := h.Meshes()[0].Node.Streams().Streams; got != 0 {
		t.Fatalf("open streams back on UDP: got %d, want 0", got)
	}
}

func TestForcedStreamCarrier(t *testing.T) {
	h := start(t, Options{Carrier: streambind.CarrierStream})
	if got := carrierOf(h, 0); got != streambind.CarrierStream {
		t.Fatalf("carrier: got %q, want stream", got)
	}
	l := startLoad(t.Context(), h.MeshClient(0), h.AppURL(0, "/hello"), 8)
	if err := WaitFor(t.Context(), 20*time.Second, func() bool { return l.ok.Load() >= 300 }); err != nil {
		t.Fatalf("load over the stream stalled at %d", l.ok.Load())
	}
	l.halt()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d requests failed over the stream; first errors: %v", f, first(l.errs, 5))
	}
}

func TestStreamThroughConnectProxy(t *testing.T) {
	p, err := proxytest.Start("corp", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h := start(t, Options{BlockUDP: true, Proxy: p.URL()})
	if got := carrierOf(h, 0); got != streambind.CarrierStream {
		t.Fatalf("carrier: got %q, want stream", got)
	}
	wantHello(t, h, 10)
	// Enrolment, attach and the stream each opened a tunnel.
	if got := p.Tunnels(); got < 3 {
		t.Fatalf("proxy tunnels: got %d, want at least 3 (enrol, attach, stream)", got)
	}
}

// TestHostileStreamCutOthersServe opens a credentialed stream that sends
// frames breaking the protocol; it is cut off while the real connector,
// also on a stream of the same mesh node, serves a steady load.
func TestHostileStreamCutOthersServe(t *testing.T) {
	h := start(t, Options{Carrier: streambind.CarrierStream})
	k, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cred, _, err := h.Authority.IssueCredential("hostile", "hq", k.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t.Context(), h.MeshClient(0), h.AppURL(0, "/hello"), 4)
	defer l.halt()
	frames := []struct {
		name string
		data []byte
	}{
		{"oversized", binary.BigEndian.AppendUint16(nil, 0xffff)},
		{"garbage", append(binary.BigEndian.AppendUint16(nil, 40), strings.Repeat("x", 40)...)},
	}
	for i, f := range frames {
		t.Run(f.name, func(t *testing.T) {
			c := hostileStream(t, h, cred, k)
			defer c.Close()
			if _, err := c.Write(f.data); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("stream not closed by the mesh node: %v", err)
			}
			if got := h.Meshes()[0].Node.Streams().Cut; got != uint64(i+1) {
				t.Fatalf("cut streams: got %d, want %d", got, i+1)
			}
		})
	}
	target := l.ok.Load() + 100
	if err := WaitFor(t.Context(), 20*time.Second, func() bool { return l.ok.Load() >= target }); err != nil {
		t.Fatalf("load stalled at %d", l.ok.Load())
	}
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d requests failed; first errors: %v", f, first(l.errs, 5))
	}
}

// hostileStream opens a stream to mesh node 0 by hand, with the proof of
// possession of key, and returns it after the 101.
func hostileStream(t *testing.T, h *Harness, cred string, key wgkey.Private) *tls.Conn {
	t.Helper()
	proof, err := enroll.Proof(key, h.Meshes()[0].Node.WireGuard().PublicKey(), streambind.Path, time.Now(), cred, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", h.Meshes()[0].Addr, &tls.Config{RootCAs: h.CA.Pool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://localhost"+streambind.Path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", streambind.Protocol)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(streambind.ProofHeader, proof)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: got %d, want 101", resp.StatusCode)
	}
	return c
}
