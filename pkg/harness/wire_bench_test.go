package harness

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/sampleapp"
)

// BenchmarkIdentityOnTheWire measures what the caller's identity adds on
// the wire to one GET /hello through mesh node 0 and its connector (the
// bench scenarios tunnel, tunnel-auth and tunnel-bearer, one request at a
// time over HTTP/1.1): the WireGuard packets the connector receives and
// sends per request (pkts-in/op, pkts-out/op) and the allocations of the
// whole system, client, edge, connector and backend (allocs/op, B/op).
// Unlike times, these figures do not move with the machine's load. The
// "lean" legs are the same requests to a copy of the apps whose identity
// headers leave the assertion out (identity_headers: {assertion: ""}).
func BenchmarkIdentityOnTheWire(b *testing.B) {
	backend := httptest.NewServer(sampleapp.New(sampleapp.Config{}))
	b.Cleanup(backend.Close)
	lean := func(id, access string) string {
		return fmt.Sprintf("  - id: %s\n    host: %s.localhost\n    internal_url: %s\n    connector_group: hq\n    preauth: entra\n"+
			"    identity_headers: {assertion: \"\"}\n%s", id, id, backend.URL, access)
	}
	h := start(b, Options{Auth: true, ExtraCatalog: lean("lean", fmt.Sprintf("    policy:\n      allow: {groups: [\"%s\"]}\n", devidp.DemoSupportGroupID)) +
		lean("lean-api", fmt.Sprintf("    bearer:\n      entra: {audiences: [\"%s\"], versions: [2]}\n    policy:\n      allow: {roles: [\"%s\"]}\n", APIClientID, APIReadRole))})
	ck, err := h.SignIn(b.Context(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	leanURL := func(id string) string {
		return strings.Replace(h.OpenAppURL(0, "/hello"), OpenAppHost, id+".localhost", 1)
	}
	browser := h.Browser()
	if resp, body, err := Navigate(b.Context(), browser, leanURL("lean"), "alice", ""); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("sign in to the lean app: %v %v %.200s", resp, err, body)
	}
	u, _ := url.Parse(leanURL("lean"))
	var leanCk *http.Cookie
	for _, c := range browser.Jar.Cookies(u) {
		if c.Name == "__Host-postern" {
			leanCk = c
		}
	}
	if leanCk == nil {
		b.Fatal("no app cookie for the lean app")
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
		{"cookie-lean", leanURL("lean"), func(r *http.Request) { r.AddCookie(leanCk) }},
		{"bearer-lean", leanURL("lean-api"), func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }},
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
