package edge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/wgkey"
)

// BenchmarkServeAuthenticated measures the edge's whole per-request path
// for a signed-in browser request with a typical set of headers: host
// lookup, request checks, authentication and policy on a cache hit, header
// rewriting, the proxy to a backend on loopback (standing in for the
// tunnel) and the response. It uses only the package's long-standing API,
// so it runs unchanged on older commits for before/after comparisons.
func BenchmarkServeAuthenticated(b *testing.B) {
	benchServe(b, func(c Config) Config { return c })
}

// benchServe is BenchmarkServeAuthenticated with the handler's Config
// passed through configure.
func benchServe(b *testing.B, configure func(Config) Config) {
	serve := newServe(b, configure)
	serve()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for b.Loop() {
		serve()
	}
	cpu.report(b)
}

// newServe returns a function serving one signed-in browser request with
// a typical set of headers through a handler built with configure, to a
// backend on loopback; it fails tb unless the answer is 200.
func newServe(tb testing.TB, configure func(Config) Config) func() {
	h, app, tok := newAuthHandler(tb)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	tb.Cleanup(backend.Close)
	d := &net.Dialer{}
	p := pool.New(pool.Config{Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", backend.Listener.Addr().String())
	}})
	tb.Cleanup(p.Close)
	k, _ := wgkey.Generate()
	c1 := p.Upsert("c1", app.ConnectorGroup, k.Public())
	cat := h.cfg.Catalog()
	h = New(configure(Config{Catalog: func() *catalog.Catalog { return cat }, Router: &orderedRouter{paths: []Path{c1}}, Auth: h.cfg.Auth}))
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/home/page?x=1", nil)
		r.Host, r.RemoteAddr = app.Host, "10.1.2.3:4567"
		for k, v := range map[string]string{
			"Accept":                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
			"Accept-Encoding":           "gzip, deflate, br, zstd",
			"Accept-Language":           "en-GB,en;q=0.9",
			"Cache-Control":             "max-age=0",
			"Cookie":                    "theme=dark; " + AppCookie + "=" + tok + "; lang=en",
			"Priority":                  "u=0, i",
			"Referer":                   "https://" + app.Host + "/home",
			"Sec-Ch-Ua":                 `"Chromium";v="131", "Not_A Brand";v="24"`,
			"Sec-Ch-Ua-Mobile":          "?0",
			"Sec-Ch-Ua-Platform":        `"Linux"`,
			"Sec-Fetch-Dest":            "document",
			"Sec-Fetch-Mode":            "navigate",
			"Sec-Fetch-Site":            "same-origin",
			"Sec-Fetch-User":            "?1",
			"Upgrade-Insecure-Requests": "1",
			"User-Agent":                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		} {
			r.Header.Set(k, v)
		}
		return r
	}
	return func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req())
		if w.Code != 200 {
			tb.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
}

var _ = session.AppClaims{} // the helper's token type, kept for older commits' builds

// browserHeaders is the header set of BenchmarkStripHeaders: a browser's
// navigation with a few cookies.
func browserHeaders() http.Header {
	return http.Header{
		"Accept": {"text/html"}, "Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"en-GB,en;q=0.9"},
		"Cache-Control": {"max-age=0"}, "Cookie": {"theme=dark; lang=en"}, "Priority": {"u=0, i"}, "Referer": {"https://app/home"},
		"Sec-Ch-Ua": {`"Chromium";v="131"`}, "Sec-Ch-Ua-Mobile": {"?0"}, "Sec-Ch-Ua-Platform": {`"Linux"`},
		"Sec-Fetch-Dest": {"document"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Site": {"same-origin"}, "Sec-Fetch-User": {"?1"},
		"Upgrade-Insecure-Requests": {"1"}, "User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0"},
	}
}

// BenchmarkStripHeaders measures the removal of client headers a backend
// must not trust from a typical browser request.
func BenchmarkStripHeaders(b *testing.B) {
	app := &catalog.App{IdentityHeaders: catalog.DefaultIdentityHeaders}
	hs := make([]http.Header, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if len(hs) == 0 {
			b.StopTimer()
			for range cap(hs) {
				hs = append(hs, browserHeaders())
			}
			b.StartTimer()
		}
		h := hs[len(hs)-1]
		hs = hs[:len(hs)-1]
		stripClientHeaders(h, app)
	}
}
