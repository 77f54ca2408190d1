package edge

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/session"
)

// mintApp signs an app token for the smartmoney app of session sid, whose
// user authenticated at authTime, bound to nonce.
func mintApp(tb testing.TB, ks *session.Keyset, sid string, authTime time.Time, nonce string) string {
	tb.Helper()
	now := time.Now()
	tok, err := ks.Sign(session.TypeApp, session.AppClaims{
		Identity: session.Identity{Subject: "tid/alice", TenantID: benchTenant, Groups: []string{"g-support"}, Roles: []string{"SmartMoney.User"},
			AuthTime: authTime.Unix(), SessionID: sid},
		AppID: "smartmoney", Audience: "smartmoney.example.com", Binding: bindHash(nonce), ReturnPath: "/reports?q=1",
		IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func newDenyList(tb testing.TB, es ...revoke.Entry) *revoke.List {
	tb.Helper()
	l, err := revoke.Open(filepath.Join(tb.TempDir(), "r.json"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range es {
		if _, err := l.Add(revoke.Record{Entry: e}); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

func setCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestRevokedCookieSignsInAfresh: an app cookie of a revoked session, or
// of a user authenticated before the user's revocation, is refused and the
// browser is sent to a fresh sign-in at the provider.
func TestRevokedCookieSignsInAfresh(t *testing.T) {
	now := time.Now()
	before := now.Add(-time.Minute)
	l := newDenyList(t, revoke.Session("sid-out", now, 0), revoke.User("tid/alice", before, now, 0))
	h, app, _, ks, _ := newAuthHandlerWith(t, l)
	tests := []struct {
		name     string
		sid      string
		authTime time.Time
		revoked  bool
	}{
		{"signed-out session", "sid-out", now, true},
		{"user authenticated before the user's revocation", "sid-live", before.Add(-time.Second), true},
		{"user authenticated in the revocation's second", "sid-live", before, true},
		{"user authenticated after it", "sid-live", before.Add(time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq("/home")
			r.RemoteAddr = "10.1.2.3:4567"
			r.AddCookie(&http.Cookie{Name: AppCookie, Value: mintApp(t, ks, tt.sid, tt.authTime, "n")})
			w := httptest.NewRecorder()
			st := &reqState{rid: "r", clientIP: "10.1.2.3"}
			allowed := h.authenticate(w, r, app, st) != nil
			if allowed == tt.revoked {
				t.Fatalf("allowed %v, want %v (status %d, reason %q)", allowed, !tt.revoked, w.Code, st.errReason)
			}
			if !tt.revoked {
				return
			}
			loc, _ := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || !strings.HasSuffix(loc.Path, "/authorize") || !requestOf(t, loc).Fresh {
				t.Fatalf("got %d to %q, want a fresh sign-in", w.Code, w.Header().Get("Location"))
			}
			if c := setCookie(w, FreshCookie); c == nil || c.Value != "1" {
				t.Errorf("no fresh-sign-in marker set")
			}
			if !strings.Contains(st.errReason, "revoked") {
				t.Errorf("access-log reason %q does not say revoked", st.errReason)
			}
		})
	}
}

// TestRevokedHandoff: a handoff of a revoked session (a still-valid
// global session on the auth host, e.g. a copy in another browser) leads
// once to a fresh sign-in, and after that to a page: never a loop.
func TestRevokedHandoff(t *testing.T) {
	l := newDenyList(t, revoke.Session("sid-out", time.Now(), 0))
	h, _, _, ks, _ := newAuthHandlerWith(t, l)
	nonce := strings.Repeat("A", 43)
	tok := mintApp(t, ks, "sid-out", time.Now(), nonce)
	call := func(fresh bool) *httptest.ResponseRecorder {
		r := newReq(CallbackPath + "?token=" + url.QueryEscape(tok))
		r.AddCookie(&http.Cookie{Name: bindCookieName(bindHash(nonce)), Value: nonce})
		if fresh {
			r.AddCookie(&http.Cookie{Name: FreshCookie, Value: "1"})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := call(false)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || !requestOf(t, loc).Fresh || requestOf(t, loc).ReturnPath != "/reports?q=1" {
		t.Fatalf("first handoff: got %d to %q, want a fresh sign-in back to /reports?q=1", w.Code, w.Header().Get("Location"))
	}
	if setCookie(w, AppCookie) != nil {
		t.Fatal("an app cookie was set for a revoked session")
	}
	w = call(true)
	if w.Code != http.StatusForbidden || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "revoked") {
		t.Fatalf("after a fresh sign-in: got %d to %q, want a 403 page", w.Code, w.Header().Get("Location"))
	}
	if setCookie(w, AppCookie) != nil {
		t.Fatal("an app cookie was set for a revoked session")
	}
}

// TestLogoutRevokesSession: /.postern/logout revokes the session of the app
// cookie, and takes the auth functions' signed notice; forged notices and
// cookies revoke nothing.
func TestLogoutRevokesSession(t *testing.T) {
	h, _, _, ks, rec := newAuthHandlerWith(t, nil)
	logout := func(query string, cookie string) *httptest.ResponseRecorder {
		r := newReq(LogoutPath + query)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: AppCookie, Value: cookie})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := logout("", mintApp(t, ks, "sid-1", time.Now(), "n"))
	if got := rec.revoked(); len(got) != 1 || got[0] != "sid-1" {
		t.Fatalf("revoked %v, want [sid-1]", got)
	}
	if c := setCookie(w, AppCookie); c == nil || c.MaxAge >= 0 {
		t.Error("the app cookie was not cleared")
	}
	if loc, _ := url.Parse(w.Header().Get("Location")); loc.Host != "auth.example.com" || loc.Path != "/logout" ||
		loc.Query().Get("app") != "smartmoney" || requestOf(t, loc).Host != "smartmoney.example.com" {
		t.Errorf("got Location %q, want the auth functions' /logout with smartmoney's signed request", loc)
	}
	notice := func(ks *session.Keyset, sid, aud string) string {
		now := time.Now()
		n, err := ks.Sign(session.TypeLogout, session.LogoutClaims{SessionID: sid, Subject: "tid/alice", Audience: aud,
			IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	w = logout("?notice="+url.QueryEscape(notice(ks, "sid-2", "smartmoney.example.com")), "")
	if got := rec.revoked(); len(got) != 2 || got[1] != "sid-2" {
		t.Fatalf("revoked %v, want sid-2 added", got)
	}
	if loc := w.Header().Get("Location"); !strings.Contains(loc, "done=1") {
		t.Errorf("after a notice: got Location %q, want done=1", loc)
	}
	other, _ := session.GenerateKeyset()
	for name, q := range map[string]string{
		"notice of another key set": notice(other, "sid-3", "smartmoney.example.com"),
		"notice for another app":    notice(ks, "sid-3", "other.example.com"),
		"app token as notice":       mintApp(t, ks, "sid-3", time.Now(), "n"),
	} {
		w := logout("?notice="+url.QueryEscape(q), "")
		if got := rec.revoked(); len(got) != 2 {
			t.Errorf("%s: revoked %v", name, got)
		}
		if strings.Contains(w.Header().Get("Location"), "done=1") {
			t.Errorf("%s: done=1 after a refused notice", name)
		}
	}
	forged := mintApp(t, other, "sid-4", time.Now(), "n")
	logout("", forged)
	if got := rec.revoked(); len(got) != 2 {
		t.Errorf("a forged app cookie revoked %v", got)
	}
}

// TestRevokedBearer: a revocation refuses bearer tokens as it does
// cookies, on a node with sign-in and on one without (bearer tokens
// only), including a token already verified and cached: a workload by its
// subject; a command-line client's app token by its session or its user.
// A revocation of someone else refuses nothing.
func TestRevokedBearer(t *testing.T) {
	const workload = "wif:ci/repo:octo/app:ref:refs/heads/main"
	for _, signIn := range []bool{true, false} {
		l := newDenyList(t, revoke.User("tid/someone-else", time.Now(), time.Now(), 0))
		e := newBearerEnv(t, l)
		cfg := e.h.cfg
		if !signIn {
			cfg.Auth = nil
		}
		h := New(cfg)
		call := func(tok string, hdr ...string) *httptest.ResponseRecorder {
			r := newReq("/home")
			r.RemoteAddr = "10.1.2.3:4567"
			r.Header.Set("Authorization", "Bearer "+tok)
			for i := 0; i+1 < len(hdr); i += 2 {
				r.Header.Set(hdr[i], hdr[i+1])
			}
			w := httptest.NewRecorder()
			h.authenticate(w, r, e.app, &reqState{rid: "r", clientIP: "10.1.2.3", cat: cfg.Catalog()})
			return w
		}
		if w := call(e.bearer); w.Code != http.StatusOK {
			t.Fatalf("sign-in %v: workload before its revocation: got %d %s", signIn, w.Code, w.Header())
		}
		if _, err := l.Add(revoke.Record{Entry: revoke.User(workload, time.Now(), time.Now(), 0)}); err != nil {
			t.Fatal(err)
		}
		w := call(e.bearer) // cached since the first call
		if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" ||
			!strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token", error_description="the workload was revoked"`) {
			t.Errorf("sign-in %v: revoked workload: got %d %v, want 401 invalid_token", signIn, w.Code, w.Header())
		}
		if !signIn {
			continue // command-line app tokens need the auth functions' keys
		}
		_, _, _, ks, _ := newAuthHandlerWith(t, nil)
		a := *cfg.Auth
		v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS(), Issuer: "https://auth.example.com"})
		a.Verifier, a.Cache = v, session.NewCache(v, 100)
		cfg.Auth = &a
		h = New(cfg)
		nonce := strings.Repeat("B", 43)
		cli := func(sid string, authTime time.Time) string {
			now := time.Now()
			tok, err := ks.Sign(session.TypeApp, session.AppClaims{
				Identity: session.Identity{Subject: "tid/alice", TenantID: benchTenant, Roles: []string{"SmartMoney.User"},
					AuthTime: authTime.Unix(), SessionID: sid},
				AppID: "smartmoney", Audience: e.app.Host, Binding: bindHash(nonce), ReturnPath: "/", CLI: true,
				IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), Issuer: "https://auth.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		early := time.Now().Add(-time.Hour)
		for _, tok := range []string{cli("sid-cli", early), cli("sid-out", time.Now())} {
			if w := call(tok, BindingHeader, nonce); w.Code != http.StatusOK {
				t.Fatalf("command-line token before its revocation: got %d %v", w.Code, w.Header())
			}
		}
		if _, err := l.Add(revoke.Record{Entry: revoke.Session("sid-out", time.Now(), 0)},
			revoke.Record{Entry: revoke.User("tid/alice", early.Add(time.Minute), time.Now(), 0)}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			tok, why string
		}{{cli("sid-out", time.Now()), "session"}, {cli("sid-cli", early), "user"}} {
			w := call(tc.tok, BindingHeader, nonce)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), "the "+tc.why+" of this sign-in was revoked") {
				t.Errorf("command-line token of a revoked %s: got %d %v", tc.why, w.Code, w.Header())
			}
		}
		if w := call(cli("sid-new", time.Now()), BindingHeader, nonce); w.Code != http.StatusOK {
			t.Errorf("a sign-in after the user's revocation: got %d %v, want it admitted", w.Code, w.Header())
		}
	}
}
