package harness

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkIdentityOnTheWire measures what the caller's identity adds on
// the wire to one GET /hello through mesh node 0 and its connector (the
// bench scenarios tunnel, tunnel-auth and tunnel-bearer, one request at a
// time over HTTP/1.1): the WireGuard packets the connector receives and
// sends per request (pkts-in/op, pkts-out/op) and the allocations of the
// whole system, client, edge, connector and backend (allocs/op, B/op).
// Unlike times, these figures do not move with the machine's load.
func BenchmarkIdentityOnTheWire(b *testing.B) {
	h := start(b, Options{Auth: true})
	ck, err := h.SignIn(b.Context(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := h.ClientCredentials(b.Context(), DaemonClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		b.Fatal(err)
	}
	c := h.StreamClient(0)
	b.Cleanup(c.CloseIdleConnections)
	for _, leg := range []struct {
		name, url string
		auth      func(*http.Request)
	}{
		{"passthrough", h.OpenAppURL(0, "/hello"), func(*http.Request) {}},
		{"cookie", h.AppURL(0, "/hello"), func(r *http.Request) { r.AddCookie(ck) }},
		{"bearer", h.APIURL(0, "/hello"), func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }},
	} {
		b.Run(leg.name, func(b *testing.B) {
			get := func() {
				req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, leg.url, nil)
				if err != nil {
					b.Fatal(err)
				}
				leg.auth(req)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("got %d, %v", resp.StatusCode, err)
				}
			}
			for range 20 { // connections open, tokens and assertions cached
				get()
			}
			udp := h.Connectors()[0].UDP
			sent, received := udp.Packets()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				get()
				n++
			}
			sent2, received2 := udp.Packets()
			b.ReportMetric(float64(received2-received)/float64(n), "pkts-in/op")
			b.ReportMetric(float64(sent2-sent)/float64(n), "pkts-out/op")
		})
	}
}
