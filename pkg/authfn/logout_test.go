package authfn

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
			q := url.Values{"app": {"wiki"}}
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
		w := e.get("/authorize?" + url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {b}}.Encode())
		assertRefused(t, w, http.StatusBadGateway)
		if n := strings.Count(e.logs.String(), "discover provider"); n != i+1 {
			t.Errorf("attempt %d: got %d discovery failures logged, want %d", i+1, n, i+1)
		}
	}
}
