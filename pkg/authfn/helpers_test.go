package authfn

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

const (
	tenantA  = "11111111-1111-4111-8111-111111111111"
	tenantB  = "22222222-2222-4222-8222-222222222222"
	tenantC  = "33333333-3333-4333-8333-333333333333"
	clientID = "postern-test-client"
	authURL  = "https://auth.localhost:8443"

	groupMoney = "aaaaaaaa-0000-4000-8000-000000000001"
	groupOther = "aaaaaaaa-0000-4000-8000-000000000002"
	groupNone  = "aaaaaaaa-0000-4000-8000-000000000099" // named by no policy
)

// testCatalog has a group-gated app, an open pre-authenticated app, an app
// requiring an authentication context and a maximum session age, and a
// passthrough app.
const testCatalog = `
home_tenant: ` + tenantA + `
connector_groups:
  - id: hq
apps:
  - id: smartmoney
    host: smartmoney.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: entra
    session_lifetime: 1h
    policy:
      allow: { groups: ["` + groupMoney + `"], roles: ["SmartMoney.User"] }
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
          require_acrs: ["c2"]
  - id: wiki
    host: wiki.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: entra
  - id: vault
    host: vault.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: entra
    max_session_age: 1h
    policy:
      allow: { groups: ["` + groupOther + `"] }
      require_acrs: ["c1"]
  - id: open
    host: open.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: passthrough
`

// testMesh is a mesh authority and one of its nodes, which signs the app
// requests for the test catalogue as a mesh node's edge does.
type testMesh struct {
	authority ed25519.PrivateKey
	node      ed25519.PrivateKey
	cred      nodecred.Credential
	cat       *catalog.Catalog
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestMesh(t testing.TB, now time.Time) *testMesh {
	t.Helper()
	m := &testMesh{authority: newEdKey(t), node: newEdKey(t), cat: mustCatalog(t, testCatalog)}
	var wg wgkey.Public
	rand.Read(wg[:])
	var err error
	m.cred, err = nodecred.Encode(m.authority.Public().(ed25519.PublicKey), func(b []byte) []byte { return ed25519.Sign(m.authority, b) },
		"mesh-test-1", "local", wg, m.node.Public().(ed25519.PublicKey), now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// authorityKeys returns the public authority key the functions trust.
func (m *testMesh) authorityKeys() []ed25519.PublicKey {
	return []ed25519.PublicKey{m.authority.Public().(ed25519.PublicKey)}
}

// sign signs r as the mesh node at now.
func (m *testMesh) sign(t testing.TB, r appreq.Request, now func() time.Time) string {
	t.Helper()
	s, err := appreq.NewSigner(appreq.SignerConfig{Credential: m.cred, Sign: func(b []byte) []byte { return ed25519.Sign(m.node, b) },
		Audience: authURL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(r)
	if err != nil {
		t.Fatalf("sign app request: %v", err)
	}
	return tok
}

// request returns the app request the edge makes for app and rd, bound
// to b.
func (m *testMesh) request(t testing.TB, app, rd, b string) appreq.Request {
	t.Helper()
	a, ok := m.cat.App(app)
	if !ok {
		t.Fatalf("no app %s in the test catalogue", app)
	}
	r := m.cat.SignInRequest(a, rd)
	r.Binding = b
	return r
}

// authorizePath is the /authorize target the edge redirects a browser to
// for app and rd, bound to b.
func (e *testEnv) authorizePath(t testing.TB, app, rd, b string) string {
	t.Helper()
	return e.authorizeRequest(t, e.mesh.request(t, app, rd, b))
}

// authorizeRequest is the /authorize target carrying r, signed now.
func (e *testEnv) authorizeRequest(t testing.TB, r appreq.Request) string {
	t.Helper()
	return "/authorize?" + url.Values{"app": {r.AppID}, appreq.Param: {e.mesh.sign(t, r, e.clock.Now)}}.Encode()
}

// testEnv is a Service wired to a fakeOP.
type testEnv struct {
	mesh  *testMesh
	op    *fakeOP
	svc   *Service
	cfg   Config
	keys  *session.Keyset
	clock *testkit.Clock
	logs  *testkit.SyncBuffer
}

func mustCatalog(t testing.TB, yaml string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse catalog: %v", err)
	}
	return c
}

// newTestEnv builds a single-tenant Entra service against a fake provider;
// mutate may change the config first.
func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	op := newFakeOP(t)
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	clk := testkit.NewClock(time.Now().Truncate(time.Second))
	logs := &testkit.SyncBuffer{}
	mesh := newTestMesh(t, clk.Now())
	cfg := Config{
		AuthURL:            authURL,
		AppPort:            ":8443",
		MeshAuthorityKeys:  mesh.authorityKeys(),
		Keys:               keys,
		StateKey:           bytes.Repeat([]byte{7}, 32),
		EntraAuthorityBase: op.URL(),
		TenantID:           tenantA,
		ClientID:           clientID,
		ClientSecret:       "s3cret-value",
		GraphURL:           op.URL(),
		PostLogoutURLs:     []string{"https://example.com/bye", "https://example.com/other"},
		HTTPClient:         op.srv.Client(),
		Logger:             slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:                clk.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testEnv{mesh: mesh, op: op, svc: svc, cfg: cfg, keys: keys, clock: clk, logs: logs}
}

// get serves a GET of target with cookies.
func (e *testEnv) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, authURL+target, nil)
	r.Header.Set("Accept", "text/html")
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	return w
}

// newBinding returns a bind nonce's b parameter.
func newBinding() string {
	sum := sha256.Sum256([]byte(rand.Text()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// started is a sign-in redirected to the provider.
type started struct {
	flow      *http.Cookie
	state     string
	nonce     string
	challenge string
	authURL   *url.URL
	b         string
}

// start runs /authorize for app and rd and expects a redirect to the
// provider.
func (e *testEnv) start(t testing.TB, app, rd string, cookies ...*http.Cookie) *started {
	t.Helper()
	b := newBinding()
	w := e.get(e.authorizePath(t, app, rd, b), cookies...)
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: got status %d, want 302; body %s", w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(u.String(), e.op.URL()+"/oauth2/authorize?") {
		t.Fatalf("authorize: got Location %q, want the provider's authorization endpoint", w.Header().Get("Location"))
	}
	flow := cookieNamed(w, FlowCookie)
	if flow == nil || flow.Value == "" {
		t.Fatalf("authorize: no flow cookie set")
	}
	q := u.Query()
	return &started{flow: flow, state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), authURL: u, b: b}
}

// claims returns an Entra-shaped ID token for s, which mutate may change
// (a nil value deletes a claim).
func (e *testEnv) claims(s *started, mutate map[string]any) map[string]any {
	now := e.clock.Now()
	c := map[string]any{
		"iss":                e.op.URL() + "/" + tenantA + "/v2.0",
		"aud":                clientID,
		"exp":                now.Add(time.Hour).Unix(),
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"nonce":              s.nonce,
		"sub":                "pairwise-sub",
		"tid":                tenantA,
		"oid":                "0000aaaa-0000-4000-8000-00000000beef",
		"name":               "Alice Example",
		"preferred_username": "alice@example.com",
		"email":              "alice@example.com",
		"groups":             []string{groupMoney, groupNone},
		"roles":              []string{"SmartMoney.User", "Unrelated.Role"},
		"ver":                "2.0",
	}
	for k, v := range mutate {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// finish redeems idToken through /callback for s.
func (e *testEnv) finish(s *started, idToken string) *httptest.ResponseRecorder {
	code := e.op.issue(s.challenge, idToken)
	return e.get("/callback?"+url.Values{"code": {code}, "state": {s.state}}.Encode(), s.flow)
}

// signIn runs a whole sign-in for app with the default claims changed by
// mutate.
func (e *testEnv) signIn(t testing.TB, app string, mutate map[string]any) (*started, *httptest.ResponseRecorder) {
	t.Helper()
	s := e.start(t, app, "/x?y=1")
	return s, e.finish(s, e.op.sign(t, e.claims(s, mutate), false))
}

// appToken checks that w redirects to app's callback and returns the
// verified app token.
func (e *testEnv) appToken(t testing.TB, w *httptest.ResponseRecorder, host string) *session.AppClaims {
	t.Helper()
	if w.Code != http.StatusFound {
		t.Fatalf("got status %d, want 302; body %s", w.Code, w.Body)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://" + host + ":8443/.postern/callback"; loc.Scheme+"://"+loc.Host+loc.Path != want {
		t.Fatalf("got redirect %q, want %s?token=…", loc, want)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: e.keys.JWKS(), Now: e.clock.Now})
	ac, err := v.VerifyApp(t.Context(), loc.Query().Get("token"), host)
	if err != nil {
		t.Fatalf("verify app token: %v", err)
	}
	return ac
}

// cookieNamed returns the cookie w sets named name; FlowCookie stands for
// the flow cookie of any sign-in (FlowCookie-<id>), the one set rather
// than cleared if there are several.
func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	cs := w.Result().Cookies()
	if name == FlowCookie {
		slices.SortStableFunc(cs, func(a, b *http.Cookie) int { return len(b.Value) - len(a.Value) })
	}
	for _, c := range cs {
		if c.Name == name || (name == FlowCookie && strings.HasPrefix(c.Name, FlowCookie+"-")) {
			return c
		}
	}
	return nil
}

// assertRefused checks that w is an error page with status and no cookie.
func assertRefused(t testing.TB, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Errorf("got status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if sc := w.Header().Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("got Set-Cookie %q on a refusal, want none", sc)
	}
	body := w.Body.String()
	if !strings.Contains(body, "Request id") && !strings.Contains(body, "request id") {
		t.Errorf("got body without a request id: %s", body)
	}
	for _, leak := range []string{"goroutine", "panic", "s3cret-value", "eyJ"} {
		if strings.Contains(body, leak) {
			t.Errorf("error page contains %q: %s", leak, body)
		}
	}
}
