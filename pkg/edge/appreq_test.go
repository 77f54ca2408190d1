package edge

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/wgkey"
)

// The edge tests' mesh authority and node: fixed keys, so that any test
// can check the signed app request a redirect carries.
var (
	testAuthority = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	testNodeKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
)

const testAuthURL = "https://auth.example.com"

// testRequests returns the signer of the edge tests' node.
func testRequests(tb testing.TB) *appreq.Signer {
	tb.Helper()
	now := time.Now()
	cred, err := nodecred.Encode(testAuthority.Public().(ed25519.PublicKey), func(m []byte) []byte { return ed25519.Sign(testAuthority, m) },
		"mesh-test", "local", wgkey.Public{1}, testNodeKey.Public().(ed25519.PublicKey), now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := appreq.NewSigner(appreq.SignerConfig{Credential: cred, Sign: func(m []byte) []byte { return ed25519.Sign(testNodeKey, m) }, Audience: testAuthURL})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// requestOf verifies, as the auth functions do, the signed app request
// that the redirect to loc carries.
func requestOf(tb testing.TB, loc *url.URL) *appreq.Request {
	tb.Helper()
	v, err := appreq.NewVerifier(appreq.VerifierConfig{AuthorityKeys: []ed25519.PublicKey{testAuthority.Public().(ed25519.PublicKey)}, Audience: testAuthURL})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := v.Verify(loc.Query().Get(appreq.Param))
	if err != nil {
		tb.Fatalf("the redirect to %s carries no valid app request: %v", loc.Redacted(), err)
	}
	return r
}

// TestSignInCarriesSignedRequest: the redirect to sign in carries the
// app's requirements from the live catalogue, signed by the node — the
// groups and roles its policy names, the authentication contexts of the
// return path's rule (step-up), its lifetimes — bound to the browser's
// bind cookie; nothing of it travels unsigned.
func TestSignInCarriesSignedRequest(t *testing.T) {
	cat, err := catalog.Parse("t.yaml", []byte(`home_tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47
connector_groups:
  - id: hq
apps:
  - id: smartmoney
    host: smartmoney.example.com
    internal_url: http://10.0.0.5:8080
    connector_group: hq
    preauth: entra
    session_lifetime: 2h
    max_session_age: 12h
    policy:
      allow: { groups: ["g-support"], tenants: ["b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"] }
      require_acrs: ["c1"]
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
          require_acrs: ["c2"]
  - id: wiki
    host: wiki.example.com
    internal_url: http://10.0.0.5:8080
    connector_group: hq
    preauth: entra
    session_lifetime: 24h
    policy:
      allow: { groups: ["g-wiki"] }
`))
	if err != nil {
		t.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: []byte(`{"keys":[]}`)})
	h := New(Config{Catalog: func() *catalog.Catalog { return cat }, Auth: &AuthConfig{
		AuthURL: testAuthURL, Verifier: v, Requests: testRequests(t), Cache: session.NewCache(v, 10)}})
	for _, tt := range []struct {
		target string
		acrs   []string
	}{{"/reports?q=1", []string{"c1"}}, {"/admin/users", []string{"c1", "c2"}}, {"/ADMIN", []string{"c1"}}} {
		r := newReq(tt.target)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		loc, err := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusFound || err != nil || loc.Host != "auth.example.com" || loc.Path != "/authorize" {
			t.Fatalf("%s: got %d to %q, want the auth functions' /authorize", tt.target, w.Code, w.Header().Get("Location"))
		}
		for k := range loc.Query() {
			if k != "app" && k != appreq.Param {
				t.Errorf("%s: parameter %s travels unsigned", tt.target, k)
			}
		}
		req := requestOf(t, loc)
		bind := setCookie(w, bindCookieName(req.Binding))
		if bind == nil || req.Binding != bindHash(bind.Value) {
			t.Errorf("%s: binding %q does not match the bind cookie %v", tt.target, req.Binding, bind)
		}
		if req.AppID != "smartmoney" || req.Host != "smartmoney.example.com" || req.ReturnPath != tt.target ||
			!slices.Equal(req.Groups, []string{"g-support"}) || !slices.Equal(req.Roles, []string{"SmartMoney.Admin"}) ||
			!slices.Equal(req.ACRs, tt.acrs) || req.Lifetime != 7200 ||
			!slices.Equal(req.Tenants, []string{"72f988bf-86f1-41af-91ab-2d7cd011db47", "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"}) || req.MaxAge != 12*3600 || req.NoticeLifetime != 24*3600 {
			t.Errorf("%s: got %+v", tt.target, req)
		}
		f, err := appreq.ParseFilter(req.SessionFilter)
		if err != nil || !slices.Equal(f.Groups([]string{"g-support", "g-wiki", "g-other"}), []string{"g-support", "g-wiki"}) {
			t.Errorf("%s: the session filter does not name the catalogue's groups (%v)", tt.target, err)
		}
	}
}

// TestCLILoginSignsPort: a command-line sign-in's loopback port and nonce
// hash travel to the auth functions inside the signed app request, never
// beside it; a port a user's program cannot own, or a bad hash, is refused
// before anything is signed.
func TestCLILoginSignsPort(t *testing.T) {
	h, _, _ := newAuthHandler(t)
	sum := sha256.Sum256([]byte("client nonce"))
	b := base64.RawURLEncoding.EncodeToString(sum[:])
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newReq(CLILoginPath+"?"+url.Values{"port": {"40000"}, "b": {b}}.Encode()))
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || loc.Host != "auth.example.com" || loc.Path != "/authorize" {
		t.Fatalf("got %d to %q, want the auth functions' /authorize", w.Code, w.Header().Get("Location"))
	}
	for k := range loc.Query() {
		if k != "app" && k != appreq.Param {
			t.Errorf("parameter %s travels unsigned", k)
		}
	}
	req := requestOf(t, loc)
	if req.CLIPort != 40000 || req.Binding != b || req.AppID != "smartmoney" || req.ReturnPath != "/" || req.Fresh {
		t.Errorf("got %+v, want cli 40000 bound to %s for smartmoney at /", req, b)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Errorf("a command-line sign-in set cookies in the browser: %v", w.Result().Cookies())
	}
	for _, q := range []string{
		"port=80&b=" + b, "port=1023&b=" + b, "port=0&b=" + b, "port=65536&b=" + b, "port=-1&b=" + b,
		"port=4e4&b=" + b, "port=40000&port=40001&b=" + b, "b=" + b, "port=40000",
		"port=40000&b=abc", "port=40000&b=" + b + "&b=" + b, "port=40000&b=" + b + "=",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newReq(CLILoginPath+"?"+q))
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("%s: got %d to %q, want 400", q, w.Code, w.Header().Get("Location"))
		}
	}
}
