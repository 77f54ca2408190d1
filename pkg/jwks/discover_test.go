package jwks

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestDiscover: the discovery document must name the issuer exactly and
// give a jwks_uri; anything else (another issuer, a trailing-slash
// mismatch, no JSON, an error status, an oversized document) is refused.
func TestDiscover(t *testing.T) {
	var mu sync.Mutex // guards doc and status
	var doc string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		st, d := status, doc
		mu.Unlock()
		w.WriteHeader(st)
		w.Write([]byte(d))
	}))
	defer srv.Close()
	iss := srv.URL + "/tenant/v2.0"
	for _, tc := range []struct {
		name, issuer, doc string
		status            int
		want              string // jwks_uri, or "" for an error
	}{
		{"good", iss, `{"issuer":"` + iss + `","jwks_uri":"` + srv.URL + `/keys"}`, 200, srv.URL + "/keys"},
		{"trailing slash issuer", iss + "/", `{"issuer":"` + iss + `/","jwks_uri":"` + srv.URL + `/keys"}`, 200, srv.URL + "/keys"},
		{"another issuer", iss, `{"issuer":"https://attacker.example/","jwks_uri":"https://attacker.example/keys"}`, 200, ""},
		{"slash mismatch", iss, `{"issuer":"` + iss + `/","jwks_uri":"` + srv.URL + `/keys"}`, 200, ""},
		{"no jwks_uri", iss, `{"issuer":"` + iss + `"}`, 200, ""},
		{"not JSON", iss, `<html>`, 200, ""},
		{"error status", iss, `{"issuer":"` + iss + `","jwks_uri":"x"}`, 500, ""},
		{"oversized", iss, `{"issuer":"` + iss + `","jwks_uri":"x","pad":"` + strings.Repeat("a", MaxBytes) + `"}`, 200, ""},
	} {
		mu.Lock()
		doc, status = tc.doc, tc.status
		mu.Unlock()
		got, err := New(Config{HTTPClient: srv.Client(), Issuer: tc.issuer}).discover(t.Context())
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
