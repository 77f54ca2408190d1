package authfn

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

// TestLogout checks that logout clears both cookies and continues to the
// provider's end-session endpoint only with a registered redirect.
func TestLogout(t *testing.T) {
	tests := []struct {
		name       string
		endSession bool
		noEndpoint bool
		to         string
		wantPost   string // "" means the signed-out page
	}{
		{name: "page", endSession: false},
		{name: "end session, registered to", endSession: true, to: "https://example.com/other", wantPost: "https://example.com/other"},
		{name: "end session, unregistered to", endSession: true, to: "https://evil.com/", wantPost: "https://example.com/bye"},
		{name: "end session, no to", endSession: true, wantPost: "https://example.com/bye"},
		{name: "end session, provider has no endpoint", endSession: true, noEndpoint: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, func(c *Config) { c.EndSessionRedirect = tt.endSession })
			e.op.noEndSess = tt.noEndpoint
			_, w := e.signIn(t, "wiki", nil)
			q := url.Values{"app": {"wiki"}, "done": {"1"}} // the pass after the mesh took the notice
			if tt.to != "" {
				q.Set("to", tt.to)
			}
			w = e.get("/logout?"+q.Encode(), cookieNamed(w, SessionCookie), &http.Cookie{Name: FlowCookie + "-abandoned0", Value: "x"})
			for _, name := range []string{SessionCookie, FlowCookie} {
				if c := cookieNamed(w, name); c == nil || c.MaxAge >= 0 || c.Value != "" {
					t.Errorf("got %s cookie %+v, want it cleared", name, c)
				}
			}
			if tt.wantPost == "" {
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Signed out") {
					t.Errorf("got status %d body %q, want 200 signed-out page", w.Code, w.Body)
				}
				return
			}
			loc, err := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), e.op.URL()+"/oauth2/logout?") {
				t.Fatalf("got status %d Location %q, want 302 to the end-session endpoint", w.Code, w.Header().Get("Location"))
			}
			if got := loc.Query().Get("post_logout_redirect_uri"); got != tt.wantPost {
				t.Errorf("got post_logout_redirect_uri %q, want %q", got, tt.wantPost)
			}
			if got := loc.Query().Get("client_id"); got != clientID {
				t.Errorf("got client_id %q, want %q", got, clientID)
			}
		})
	}
}

// TestJWKSAndHealth checks the static routes and that a cold service does
// no provider I/O.
func TestJWKSAndHealth(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.EntraAuthorityBase = "https://127.0.0.1:1" }) // unreachable
	w := e.get("/.well-known/jwks.json")
	var set struct {
		Keys []struct{ Kid, Use, Alg, Kty, Crv string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil || w.Code != 200 {
		t.Fatalf("jwks: got status %d body %q (%v)", w.Code, w.Body, err)
	}
	if len(set.Keys) == 0 || set.Keys[0].Kid != e.keys.ActiveKID() || set.Keys[0].Alg != "EdDSA" || set.Keys[0].Use != "sig" {
		t.Errorf("got JWKS %+v, want the active Ed25519 key", set)
	}
	if w := e.get("/healthz"); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "ok" {
		t.Errorf("healthz: got %d %q, want 200 ok", w.Code, w.Body)
	}
	if w := e.get("/nope"); w.Code != 404 {
		t.Errorf("unknown path: got %d, want 404", w.Code)
	}
	// Discovery fails now, at the first sign-in: a clear 502, and a retry
	// on the next request.
	b := newBinding()
	for i := range 2 {
		w := e.get(e.authorizePath(t, "wiki", "/", b))
		assertRefused(t, w, http.StatusBadGateway)
		if n := strings.Count(e.logs.String(), "discover provider"); n != i+1 {
			t.Errorf("attempt %d: got %d discovery failures logged, want %d", i+1, n, i+1)
		}
	}
}

// TestLogoutCarriesNoticeToMesh: a sign-out with a valid session goes
// first through a mesh node of the app with a signed notice of the
// session's end (the auth functions cannot tell the mesh themselves), and
// ends on the next pass (done=1); without a session there is no notice.
func TestLogoutCarriesNoticeToMesh(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	sess := cookieNamed(w, SessionCookie)
	sc, err := session.NewVerifier(session.VerifierConfig{Static: e.keys.JWKS(), Now: e.clock.Now}).VerifySession(t.Context(), sess.Value, "auth.localhost")
	if err != nil {
		t.Fatal(err)
	}
	w = e.get("/logout?app=wiki", sess)
	if c := cookieNamed(w, SessionCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("the first pass did not clear the session cookie: %+v", c)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || loc.Host != "wiki.localhost:8443" || loc.Path != "/.postern/logout" {
		t.Fatalf("got %d to %q, want 302 to the app's /.postern/logout", w.Code, w.Header().Get("Location"))
	}
	v := session.NewVerifier(session.VerifierConfig{Static: e.keys.JWKS(), Now: e.clock.Now, Issuer: authURL})
	lc, err := v.VerifyLogout(t.Context(), loc.Query().Get("notice"), "wiki.localhost")
	if err != nil {
		t.Fatalf("notice: %v", err)
	}
	if lc.SessionID != sc.SessionID || lc.SessionID == "" || lc.Expiry < sc.Expiry+int64(DefaultAppSessionLifetime/time.Second) {
		t.Errorf("notice %+v: want sid %s, living past the session by an app token's lifetime", lc, sc.SessionID)
	}
	// The second pass (from the mesh) and a pass without a session end
	// on the page.
	for _, q := range []string{"/logout?app=wiki&done=1", "/logout?app=wiki"} {
		cookies := []*http.Cookie{sess}
		if !strings.Contains(q, "done") {
			cookies = nil
		}
		w := e.get(q, cookies...)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Signed out") {
			t.Errorf("%s: got %d, want the signed-out page", q, w.Code)
		}
	}
}

// TestAuthorizeFresh: the mesh asks for a fresh sign-in (the browser's
// session was revoked): a valid global session is ignored and the provider
// is asked to authenticate the user again.
func TestAuthorizeFresh(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	sess := cookieNamed(w, SessionCookie)
	r := e.mesh.request(t, "wiki", "/", newBinding())
	if w := e.get(e.authorizeRequest(t, r), sess); !strings.Contains(w.Header().Get("Location"), "/.postern/callback") {
		t.Fatalf("without fresh: got %q, want a handoff from the session", w.Header().Get("Location"))
	}
	r.Fresh = true
	w = e.get(e.authorizeRequest(t, r), sess)
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), e.op.URL()+"/oauth2/authorize?") {
		t.Fatalf("fresh: got %d %q, want a redirect to the provider", w.Code, w.Header().Get("Location"))
	}
	if loc.Query().Get("prompt") != "login" {
		t.Errorf("fresh: prompt %q, want login", loc.Query().Get("prompt"))
	}
}
