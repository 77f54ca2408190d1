package authfn

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/session"
)

var cliLink = regexp.MustCompile(`id="continue" href="([^"]+)"`)

// cliToken checks that w is the confirmation page of a command-line
// handoff to port and returns the verified app token its link carries.
func (e *testEnv) cliToken(t testing.TB, w *httptest.ResponseRecorder, port, host string) *session.AppClaims {
	t.Helper()
	resp, body := w.Result(), w.Body.String()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("got status %d Location %q, want a page, no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("confirmation page headers: %v", resp.Header)
	}
	m := cliLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no Continue link: %s", body)
	}
	link, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil || link.Scheme != "http" || link.Host != "127.0.0.1:"+port || link.Path != "/callback" {
		t.Fatalf("link %q: want http://127.0.0.1:%s/callback?token=…", m[1], port)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: e.keys.JWKS(), Now: e.clock.Now})
	ac, err := v.VerifyApp(t.Context(), link.Query().Get("token"), host)
	if err != nil {
		t.Fatalf("verify app token: %v", err)
	}
	return ac
}

func TestCLIHandoff(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	sess := cookieNamed(w, SessionCookie)
	b := newBinding()
	// With a session: the confirmation page at once.
	w2 := e.get("/authorize?"+url.Values{"app": {"smartmoney"}, "rd": {"/"}, "b": {b}, "cli": {"54321"}}.Encode(), sess)
	ac := e.cliToken(t, w2, "54321", "smartmoney.localhost")
	if !ac.CLI || ac.Binding != b || ac.AppID != "smartmoney" {
		t.Errorf("got cli %v bh %q app %q, want a CLI token bound to %q", ac.CLI, ac.Binding, ac.AppID, b)
	}
	if !strings.Contains(w2.Body.String(), "alice@example.com") || !strings.Contains(w2.Body.String(), "smartmoney") {
		t.Errorf("the page does not name the user and the app: %s", w2.Body)
	}
	// Without a session: the port survives the provider's round trip.
	s := e.startCLI(t, "wiki", "40000")
	w3 := e.finish(s, e.op.sign(t, e.claims(s, nil), false))
	if ac := e.cliToken(t, w3, "40000", "wiki.localhost"); !ac.CLI {
		t.Error("token after a sign-in: not marked CLI")
	}
	// A browser's handoff is unchanged: no CLI mark.
	if ac := e.appToken(t, e.get("/authorize?"+url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {b}}.Encode(), sess), "wiki.localhost"); ac.CLI {
		t.Error("a browser's token is marked CLI")
	}
	for _, port := range []string{"80", "0", "65536", "x", "8443/evil", "-1"} {
		w := e.get("/authorize?"+url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {b}, "cli": {port}}.Encode(), sess)
		assertRefused(t, w, http.StatusBadRequest)
	}
	w4 := e.get("/authorize?app=wiki&rd=/&b="+b+"&cli=40000&cli=40001", sess)
	assertRefused(t, w4, http.StatusBadRequest)
}

// startCLI is start with a command-line client's port.
func (e *testEnv) startCLI(t testing.TB, app, port string) *started {
	t.Helper()
	b := newBinding()
	w := e.get("/authorize?" + url.Values{"app": {app}, "rd": {"/"}, "b": {b}, "cli": {port}}.Encode())
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: got %d, want 302 to the provider", w.Code)
	}
	u, _ := url.Parse(w.Header().Get("Location"))
	q := u.Query()
	return &started{flow: cookieNamed(w, FlowCookie), state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), authURL: u, b: b}
}
