package streambind

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/postern/postern/pkg/streambind/proxytest"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgnet"
)

func TestStreamCarrier(t *testing.T) {
	f := newFixture(t, nil)
	f.useStream(t)
	f.ping(t, 10*time.Second)
	if ep := f.meshEndpoint(); !IsStreamEndpoint(ep) {
		t.Fatalf("mesh sees the connector at %q, want a stream endpoint", ep)
	}
	if !f.srv.HasStream(f.conn.PublicKey()) {
		t.Fatal("server has no stream for the connector")
	}
	if got := f.srv.Stats().Streams; got != 1 {
		t.Fatalf("streams: got %d, want 1", got)
	}
	// A revoked connector's stream is cut (it redials; the mesh refuses
	// it then).
	dials := f.cb.StreamDials(f.ep)
	if !f.srv.Drop(f.conn.PublicKey()) {
		t.Fatal("Drop found no stream")
	}
	if f.srv.Drop(newKey(t).Public()) {
		t.Fatal("Drop of an unknown key reported a stream")
	}
	testkit.WaitFor(t, 5*time.Second, "the connector redials its dropped stream", func() bool { return f.cb.StreamDials(f.ep) > dials })
}

// TestSwitchCarriers moves one connector between UDP and the stream and
// back, with UDP blocked in process while it is on the stream.
func TestSwitchCarriers(t *testing.T) {
	udp := wgnet.NewBlockBind(wgnet.NewDialBind())
	f := newFixture(t, udp)
	f.ping(t, 10*time.Second)
	if ep := f.meshEndpoint(); IsStreamEndpoint(ep) || ep == "" {
		t.Fatalf("on UDP the mesh sees %q, want a UDP endpoint", ep)
	}
	udp.SetBlocked(true)
	f.useStream(t)
	f.ping(t, 10*time.Second)
	if ep := f.meshEndpoint(); !IsStreamEndpoint(ep) {
		t.Fatalf("on the stream the mesh sees %q, want a stream endpoint", ep)
	}
	// A probe while UDP is blocked hears nothing over UDP.
	f.cb.SetProbe(f.ep, true)
	before := f.cb.UDPReceived(f.ep)
	f.ping(t, 5*time.Second)
	if got := f.cb.UDPReceived(f.ep); got != before {
		t.Fatalf("UDP arrivals while blocked: got %d more, want 0", got-before)
	}
	// Unblocked, the probe's copies reach the mesh, which answers over UDP.
	udp.SetBlocked(false)
	testkit.WaitFor(t, 10*time.Second, "a UDP answer to the probe", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		f.conn.Ping(ctx, f.mesh.PublicKey())
		return f.cb.UDPReceived(f.ep) > before
	})
	f.cb.SetProbe(f.ep, false)
	if err := f.cb.SetCarrier(f.ep, CarrierUDP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "stream closed", func() bool { return !f.srv.HasStream(f.conn.PublicKey()) })
	f.ping(t, 5*time.Second)
	if ep := f.meshEndpoint(); IsStreamEndpoint(ep) {
		t.Fatalf("back on UDP the mesh sees %q, want a UDP endpoint", ep)
	}
}

func TestStreamRefused(t *testing.T) {
	f := newFixture(t, nil)
	rt := streamTransport(f.transport)
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no upgrade", map[string]string{"Authorization": "Bearer " + f.cred}, http.StatusUpgradeRequired},
		{"other protocol", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Authorization": "Bearer " + f.cred}, http.StatusUpgradeRequired},
		{"no credential", map[string]string{"Connection": "Upgrade", "Upgrade": Protocol}, http.StatusUnauthorized},
		{"unknown credential", map[string]string{"Connection": "Upgrade", "Upgrade": Protocol, "Authorization": "Bearer forged"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", f.ts.URL+Path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	_, err := dial(t.Context(), rt, Target{URL: f.ts.URL, Credential: func() string { return "forged" }})
	if !errors.Is(err, ErrUpgradeRefused) {
		t.Fatalf("dial with a forged credential: got %v, want ErrUpgradeRefused", err)
	}
	// The real credential without its proof (stolen) does not open a
	// stream either: it would take over the connector's.
	_, err = dial(t.Context(), rt, Target{URL: f.ts.URL, Credential: func() string { return f.cred }})
	if !errors.Is(err, ErrUpgradeRefused) {
		t.Fatalf("dial with a stolen credential and no proof: got %v, want ErrUpgradeRefused", err)
	}
	if got := f.srv.Stats().Streams; got != 0 {
		t.Fatalf("streams after refusals: got %d, want 0", got)
	}
}

// TestHostileStreamCut sends frames that break the protocol on a second,
// credentialed stream: it is cut off, and the first connector's stream
// keeps carrying its tunnel.
func TestHostileStreamCut(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"oversized", rawFrame(MaxFrame, make([]byte, 100))},
		{"just over the limit", rawFrame(DefaultMaxPacket+1, wgMessage(4, DefaultMaxPacket+1))},
		{"garbage", AppendFrame(nil, []byte("not a wireguard packet at all"))},
		{"empty", rawFrame(0, nil)},
	}
	f := newFixture(t, nil)
	hostile := newKey(t).Public()
	f.srv.cfg.Authorizer.(testAuth)["hostile"] = Grant{PublicKey: hostile, ConnectorID: "hostile"}
	f.useStream(t)
	f.ping(t, 10*time.Second)
	rt := streamTransport(f.transport)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rwc, err := dial(t.Context(), rt, Target{URL: f.ts.URL, Credential: func() string { return "hostile" }, Proof: testProof})
			if err != nil {
				t.Fatal(err)
			}
			defer rwc.Close()
			// A valid frame first, then the bad one.
			if _, err := rwc.Write(append(AppendFrame(nil, wgMessage(4, 64)), tt.frame...)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, bufio.NewReader(rwc))
				done <- err
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("hostile stream was not cut off")
			}
			if got := f.srv.Stats().Cut; got != uint64(i+1) {
				t.Fatalf("cut streams: got %d, want %d", got, i+1)
			}
			f.ping(t, 5*time.Second)
		})
	}
	testkit.WaitFor(t, 5*time.Second, "hostile stream unregistered", func() bool { return !f.srv.HasStream(hostile) })
	if !f.srv.HasStream(f.conn.PublicKey()) {
		t.Fatal("the good stream is gone, want it open")
	}
}

// TestStreamReconnects replaces the connector's stream from outside (a
// second stream with the same credential takes the peer's place): the
// client dials again after backoff and the tunnel carries on.
func TestStreamReconnects(t *testing.T) {
	f := newFixture(t, nil)
	f.useStream(t)
	f.ping(t, 10*time.Second)
	rwc, err := dial(t.Context(), streamTransport(f.transport), Target{URL: f.ts.URL, Credential: func() string { return f.cred }, Proof: testProof})
	if err != nil {
		t.Fatal(err)
	}
	defer rwc.Close()
	testkit.WaitFor(t, 10*time.Second, "second dial", func() bool { return f.cb.StreamDials(f.ep) >= 2 && f.cb.StreamConnected(f.ep) })
	f.ping(t, 10*time.Second)
}

// TestStreamThroughProxy opens the stream through an HTTP CONNECT proxy
// that demands basic authentication.
func TestStreamThroughProxy(t *testing.T) {
	p, err := proxytest.Start("corp", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f := newFixture(t, nil)
	tr := f.transport.Clone()
	tr.Proxy = http.ProxyURL(p.URL())
	f.cb.SetTarget(f.ep, Target{URL: f.ts.URL, Credential: func() string { return f.cred }, Proof: testProof, Transport: tr})
	f.useStream(t)
	f.ping(t, 10*time.Second)
	if p.Tunnels() < 1 {
		t.Fatalf("proxy tunnels: got %d, want at least 1", p.Tunnels())
	}
	bad := f.transport.Clone()
	u := p.URL()
	u.User = nil
	bad.Proxy = http.ProxyURL(u)
	if _, err := dial(t.Context(), streamTransport(bad), Target{URL: f.ts.URL, Credential: func() string { return f.cred }}); err == nil {
		t.Fatal("dial through the proxy without its password: got nil error")
	}
	if p.Refused() < 1 {
		t.Fatalf("proxy refusals: got %d, want at least 1", p.Refused())
	}
}
