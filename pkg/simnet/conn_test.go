package simnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func TestDialerHTTP(t *testing.T) {
	const rtt = 60 * time.Millisecond
	n := NewNetwork(tinyMatrix(t, "60"), 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	t.Cleanup(srv.Close)
	dst := netip.MustParseAddrPort(srv.Listener.Addr().String())
	if err := n.Register(dst, "far"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: n.Dialer("near", nil)}}
	t.Cleanup(client.CloseIdleConnections)

	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(srv.URL)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		if string(body) != "hello" {
			t.Errorf("body: got %q, want %q", body, "hello")
		}
		return time.Since(start), nil
	}
	// A simulated delay is never beaten; a busy machine adds to some
	// exchanges, so the upper bounds (the delay applied once, not twice)
	// are asked of the best of a few attempts.
	inBand(t, "first GET (dial + exchange)", 2*rtt, 2*rtt+300*time.Millisecond, func() (time.Duration, error) {
		client.CloseIdleConnections()
		return get()
	})
	inBand(t, "second GET (kept-alive exchange)", rtt, rtt+300*time.Millisecond, get)

	client.CloseIdleConnections()
	n.Partition([]string{"far"}, []string{"near"})
	if _, err := get(); !errors.Is(err, ErrPartitioned) {
		t.Errorf("GET across partition: got %v, want ErrPartitioned", err)
	}
}

func TestDialerPassThroughAndCancel(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "10000"), 1)
	addr := testkit.Listen(t, func(net.Conn) {})
	dial := n.Dialer("near", nil)
	c, err := dial(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial unregistered: %v", err)
	}
	if _, wrapped := c.(*delayConn); wrapped {
		t.Errorf("dial unregistered: got a delayed conn, want the plain one")
	}
	c.Close()

	if err := n.Register(netip.MustParseAddrPort(addr), "far"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := dial(ctx, "tcp", addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial with a 10s RTT and a 50ms context: got %v, want DeadlineExceeded", err)
	}
}

// inBand measures up to five times: every measure must be at least min,
// and one of them at most max (a loaded machine delays some of them).
func inBand(tb testing.TB, what string, min, max time.Duration, measure func() (time.Duration, error)) {
	tb.Helper()
	var got []time.Duration
	for range 5 {
		d, err := measure()
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		if d < min {
			tb.Fatalf("%s: took %v, want at least %v", what, d, min)
		}
		got = append(got, d)
		if d <= max {
			return
		}
	}
	tb.Errorf("%s: took %v, want one of them between %v and %v", what, got, min, max)
}
