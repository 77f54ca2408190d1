package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/session"
)

// bearerCatalog is benchCatalog's app accepting a CI issuer's tokens of
// one repository as well, beside a copy that forwards the backend's own
// bearer tokens.
const bearerCatalog = `home_tenant: ` + benchTenant + `
issuers:
  - id: ci
    issuer: %s
connector_groups:
  - id: hq
apps:
  - id: smartmoney
    host: smartmoney.example.com
    internal_url: http://10.0.0.5:8080
    connector_group: hq
    preauth: entra
    bearer:
      workloads: [{issuer: ci, audiences: ["https://smartmoney.example.com"]}]
    policy:
      allow:
        groups: ["g-support"]
        roles: ["SmartMoney.User"]
        workloads: [{issuer: ci, claims: {repository: octo/app}}]
      source_cidrs: ["10.0.0.0/8", "192.0.2.0/24"]
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
  - id: own-tokens
    host: own.example.com
    internal_url: http://10.0.0.5:8080
    connector_group: hq
    preauth: entra
    bearer: {forward_token: true}
`

// bearerEnv is an edge whose smartmoney app accepts both the app cookie
// and a CI issuer's tokens.
type bearerEnv struct {
	h              *Handler
	app, own       *catalog.App
	cookie, bearer string
}

func newBearerEnv(tb testing.TB, denied DenyList) *bearerEnv {
	tb.Helper()
	srv := httptest.NewTLSServer(nil)
	tb.Cleanup(srv.Close)
	ci, err := devidp.NewWorkloadIssuer(srv.URL, nil)
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = ci
	cat, err := catalog.Parse("bearer.yaml", []byte(fmt.Sprintf(bearerCatalog, srv.URL)))
	if err != nil {
		tb.Fatal(err)
	}
	h, _, cookie, _, _ := newAuthHandlerWith(tb, denied)
	e := &bearerEnv{cookie: cookie}
	e.app, _ = cat.App("smartmoney")
	e.own, _ = cat.App("own-tokens")
	cfg := h.cfg
	cfg.Catalog = func() *catalog.Catalog { return cat }
	cfg.Bearer = bearer.New(bearer.Config{HTTPClient: srv.Client()})
	e.h = New(cfg)
	e.bearer, err = ci.Mint(devidp.GitHubClaims("octo/app", "refs/heads/main", "", "https://smartmoney.example.com"), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		vals        []string
		tok         string
		present     bool
		badContains string
	}{
		{nil, "", false, ""},
		{[]string{"Basic dXNlcjpwdw=="}, "", false, ""},
		{[]string{"Bearer abc"}, "abc", true, ""},
		{[]string{"bearer   abc  "}, "abc", true, ""},
		{[]string{"BEARER abc"}, "abc", true, ""},
		{[]string{"Bearer"}, "", true, "empty"},
		{[]string{"Bearer "}, "", true, "empty"},
		{[]string{"Bearer a", "Bearer b"}, "", true, "several"},
		{[]string{"Basic x", "Bearer b"}, "", true, "several"},
		{[]string{"Bearerabc"}, "", false, ""},
	} {
		tok, present, bad := bearerToken(http.Header{"Authorization": tc.vals})
		if tok != tc.tok || present != tc.present || !strings.Contains(bad, tc.badContains) || (tc.badContains == "" && bad != "") {
			t.Errorf("%q: got %q, %v, %q; want %q, %v, %q", tc.vals, tok, present, bad, tc.tok, tc.present, tc.badContains)
		}
	}
}

func TestDescriptionSafe(t *testing.T) {
	if got := descriptionSafe("a \"quoted\" \\ é\r\nline" + strings.Repeat("x", 300)); strings.ContainsAny(got, "\"\\\r\né") || len(got) != 200 {
		t.Errorf("got %q", got)
	}
}

// TestBearerAtTheEdge: a token of the trusted issuer is admitted by the
// policy, the app cookie still works, and neither an invalid token nor a
// valid one is ever redirected.
func TestBearerAtTheEdge(t *testing.T) {
	e := newBearerEnv(t, nil)
	run := func(r *http.Request) (*httptest.ResponseRecorder, *reqState, bool) {
		r.RemoteAddr = "10.1.2.3:4567"
		w := httptest.NewRecorder()
		st := &reqState{rid: "r", clientIP: "10.1.2.3", cat: e.h.cfg.Catalog()}
		return w, st, e.h.authenticate(w, r, e.app, st) != nil
	}
	r := newReq("/home")
	r.Header.Set("Authorization", "Bearer "+e.bearer)
	w, st, ok := run(r)
	if !ok || st.via != viaBearer || !st.stripAuth || st.user != "wif:ci/repo:octo/app:ref:refs/heads/main" {
		t.Fatalf("workload token: got %v %+v (%d %s)", ok, st, w.Code, w.Body)
	}
	r = newReq("/admin")
	r.Header.Set("Authorization", "Bearer "+e.bearer)
	if w, _, ok := run(r); ok || w.Code != 403 || w.Header().Get("Location") != "" {
		t.Errorf("workload on /admin: got %v %d, want 403", ok, w.Code)
	}
	for _, bad := range []string{"Bearer nope", "Bearer " + e.cookie, "Bearer", "Bearer a, Bearer b"} {
		r := newReq("/home")
		r.Header.Set("Authorization", bad)
		r.AddCookie(&http.Cookie{Name: AppCookie, Value: e.cookie}) // a valid cookie does not rescue a bad token
		w, _, ok := run(r)
		if ok || w.Code != 401 || w.Header().Get("Location") != "" ||
			!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="smartmoney", error="invalid_token"`) {
			t.Errorf("%.20s: got %v %d %v, want 401 with a challenge and no redirect", bad, ok, w.Code, w.Header())
		}
	}
	r = newReq("/home")
	r.AddCookie(&http.Cookie{Name: AppCookie, Value: e.cookie})
	if _, st, ok := run(r); !ok || st.via != viaCookie || st.stripAuth {
		t.Errorf("cookie: got %v %+v", ok, st)
	}
}

// TestForwardedToken: an app that forwards its backend's own bearer
// tokens identifies the caller by the cookie, keeps the header, and never
// redirects a request that carries one.
func TestForwardedToken(t *testing.T) {
	e := newBearerEnv(t, nil)
	cookie := signCookie(t, e, e.own.Host, e.own.ID)
	r := newReq("/x")
	r.Host = e.own.Host
	r.Header.Set("Authorization", "Bearer backend-token")
	r.AddCookie(&http.Cookie{Name: AppCookie, Value: cookie})
	w := httptest.NewRecorder()
	st := &reqState{rid: "r", clientIP: "10.1.2.3", cat: e.h.cfg.Catalog()}
	if e.h.authenticate(w, r, e.own, st) == nil || st.stripAuth || st.via != viaCookie {
		t.Fatalf("with a cookie: got %d %+v", w.Code, st)
	}
	r = newReq("/x")
	r.Host = e.own.Host
	r.Header.Set("Authorization", "Bearer backend-token")
	w = httptest.NewRecorder()
	if e.h.authenticate(w, r, e.own, &reqState{rid: "r", clientIP: "10.1.2.3"}) != nil || w.Code != 401 || w.Header().Get("Location") != "" {
		t.Errorf("without a cookie: got %d %v, want 401 and no redirect", w.Code, w.Header())
	}
}

// signCookie mints an app cookie for app id at host with the handler's
// session keys.
func signCookie(tb testing.TB, e *bearerEnv, host, id string) string {
	tb.Helper()
	_, _, _, ks, _ := newAuthHandlerWith(tb, nil)
	now := time.Now()
	tok, err := ks.Sign(session.TypeApp, session.AppClaims{Identity: session.Identity{Subject: benchTenant + "/o", TenantID: benchTenant, AuthTime: now.Unix(), SessionID: "s"},
		AppID: id, Audience: host, Binding: "b", ReturnPath: "/", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com"})
	if err != nil {
		tb.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS(), Issuer: "https://auth.example.com"})
	a := *e.h.cfg.Auth
	a.Verifier, a.Cache = v, session.NewCache(v, 100)
	cfg := e.h.cfg
	cfg.Auth = &a
	e.h = New(cfg)
	return tok
}

// TestTCPPathOfAWebApp: the TCP stream path exists only on TCP apps, and
// no client may ask for the tunnel's TCP upgrade.
func TestTCPPathOfAWebApp(t *testing.T) {
	e := newBearerEnv(t, nil)
	r := newReq(catalog.TCPPath)
	r.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Authorization": {"Bearer " + e.bearer}}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 404 {
		t.Errorf("/.postern/tcp on a web app: got %d, want 404", w.Code)
	}
	r = newReq("/home")
	r.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"postern-tcp"}, "Authorization": {"Bearer " + e.bearer}}
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Errorf("Upgrade: postern-tcp from a client: got %d, want 400", w.Code)
	}
}

// BenchmarkAuthenticate compares the edge's per-request cost of a cached
// bearer token with that of a cached app cookie, with the same policy and
// the same deny-list (100,000 revoked sessions, 1,000 revoked users):
// bearer verification must cost no more than cookie verification.
func BenchmarkAuthenticate(b *testing.B) {
	e := newBearerEnv(b, bigDenyList(b))
	for _, kind := range []string{"cookie", "bearer"} {
		b.Run(kind, func(b *testing.B) {
			r := newReq("/home/page?x=1")
			r.RemoteAddr = "10.1.2.3:4567"
			if kind == "cookie" {
				r.Header.Set("Cookie", "theme=dark; "+AppCookie+"="+e.cookie+"; lang=en")
			} else {
				r.Header.Set("Cookie", "theme=dark; lang=en")
				r.Header.Set("Authorization", "Bearer "+e.bearer)
			}
			st := &reqState{rid: "r", clientIP: "10.1.2.3", cat: e.h.cfg.Catalog()}
			w := httptest.NewRecorder()
			if e.h.authenticate(w, r, e.app, st) == nil {
				b.Fatalf("not allowed: %d %s", w.Code, w.Body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if e.h.authenticate(w, r, e.app, st) == nil {
					b.Fatal("denied")
				}
			}
		})
	}
}
