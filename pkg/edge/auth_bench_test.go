package edge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/session"
)

// recordingRevoker records the sessions a sign-out revokes.
type recordingRevoker struct {
	mu   sync.Mutex
	sids []string
}

func (r *recordingRevoker) RevokeSession(_ context.Context, sid string, _ time.Time, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sids = append(r.sids, sid)
	return nil
}

func (r *recordingRevoker) revoked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sids...)
}

const benchTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

const benchCatalog = `home_tenant: ` + benchTenant + `
connector_groups:
  - id: hq
apps:
  - id: smartmoney
    host: smartmoney.example.com
    internal_url: http://10.0.0.5:8080
    connector_group: hq
    preauth: entra
    policy:
      allow: { groups: ["g-support"], roles: ["SmartMoney.User"] }
      source_cidrs: ["10.0.0.0/8", "192.0.2.0/24"]
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
        - prefix: /reports
          allow: { groups: ["g-finance"] }
`

func newAuthHandler(tb testing.TB) (*Handler, *catalog.App, string) {
	tb.Helper()
	h, app, tok, _, _ := newAuthHandlerWith(tb, nil)
	return h, app, tok
}

// newAuthHandlerWith builds an edge for the smartmoney app whose deny-list
// is denied (nil: a new empty list) and whose sign-outs revoker records;
// it returns the handler, the app, a valid app cookie, and the key set
// that signs app tokens.
func newAuthHandlerWith(tb testing.TB, denied DenyList) (*Handler, *catalog.App, string, *session.Keyset, *recordingRevoker) {
	tb.Helper()
	cat, err := catalog.Parse("bench.yaml", []byte(benchCatalog))
	if err != nil {
		tb.Fatal(err)
	}
	app, _ := cat.App("smartmoney")
	ks, err := session.GenerateKeyset()
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tok, err := ks.Sign(session.TypeApp, session.AppClaims{
		Identity: session.Identity{Subject: benchTenant + "/oid", TenantID: benchTenant, Name: "Alice", Groups: []string{"g-support"},
			Roles: []string{"SmartMoney.User"}, AuthTime: now.Unix(), SessionID: "s1"},
		AppID: "smartmoney", Audience: app.Host, Binding: "b", ReturnPath: "/",
		IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com",
	})
	if err != nil {
		tb.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS(), Issuer: "https://auth.example.com"})
	if denied == nil {
		l, err := revoke.Open(filepath.Join(tb.TempDir(), "revocations.json"), nil)
		if err != nil {
			tb.Fatal(err)
		}
		denied = l
	}
	rec := &recordingRevoker{}
	h := New(Config{Catalog: func() *catalog.Catalog { return cat }, Denied: denied, Auth: &AuthConfig{
		AuthURL: testAuthURL, Verifier: v, Requests: testRequests(tb), Cache: session.NewCache(v, 1000), Revoker: rec}})
	return h, app, tok, ks, rec
}

func TestAuthenticateAllowsAndDenies(t *testing.T) {
	h, app, tok := newAuthHandler(t)
	for _, c := range []struct {
		path string
		ok   bool
	}{{"/home", true}, {"/admin/x", false}, {"/reports", false}, {"/ADMIN/../admin", false}} {
		r := newReq(c.path)
		r.RemoteAddr = "10.1.2.3:4567"
		r.AddCookie(&http.Cookie{Name: AppCookie, Value: tok})
		w := httptest.NewRecorder()
		st := &reqState{rid: "r", clientIP: "10.1.2.3"}
		got := h.authenticate(w, r, app, st) != nil
		if got != c.ok {
			t.Errorf("%s: got allowed=%v (status %d %s), want %v", c.path, got, w.Code, w.Body, c.ok)
		}
	}
	r := newReq("/home")
	r.AddCookie(&http.Cookie{Name: AppCookie, Value: tok})
	w := httptest.NewRecorder()
	if h.authenticate(w, r, app, &reqState{rid: "r", clientIP: "203.0.113.1"}) != nil || w.Code != 403 {
		t.Errorf("client outside source_cidrs: got %d, want 403", w.Code)
	}
}

// BenchmarkAuthenticateHit measures the per-request cost of authentication
// and policy at the edge for a request whose app cookie is already in the
// verified-token cache, with a deny-list of 100,000 revoked sessions and
// 1,000 revoked users that the token is checked against (target: at most
// 2 µs).
func BenchmarkAuthenticateHit(b *testing.B) {
	h, app, tok, _, _ := newAuthHandlerWith(b, bigDenyList(b))
	r := newReq("/home/page?x=1")
	r.RemoteAddr = "10.1.2.3:4567"
	r.Header.Set("Cookie", "theme=dark; "+AppCookie+"="+tok+"; lang=en")
	st := &reqState{rid: "r", clientIP: "10.1.2.3"}
	w := httptest.NewRecorder()
	if h.authenticate(w, r, app, st) == nil {
		b.Fatalf("not allowed: %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if h.authenticate(w, r, app, st) == nil {
			b.Fatal("denied")
		}
	}
}

// bigDenyList returns a deny-list of 100,000 revoked sessions and 1,000
// revoked users, none of them the benchmarks' user.
func bigDenyList(tb testing.TB) *revoke.List {
	tb.Helper()
	l, err := revoke.Open(filepath.Join(tb.TempDir(), "revocations.json"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	var recs []revoke.Record
	for i := range 100_000 {
		recs = append(recs, revoke.Record{Entry: revoke.Session(fmt.Sprintf("sid-%d", i), now, 0)})
	}
	for i := range 1000 {
		recs = append(recs, revoke.Record{Entry: revoke.User(fmt.Sprintf("tid/user-%d", i), now, now, 0)})
	}
	if _, err := l.Add(recs...); err != nil {
		tb.Fatal(err)
	}
	return l
}

// newReq builds a request as a server receives it: origin-form target,
// Host header, TLS.
func newReq(target string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	r.Host = "smartmoney.example.com"
	r.Header.Set("Accept", "text/html")
	return r
}
