package authfn

import (
	"encoding/base64"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/appreq"
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

// cliRequest is the app request the edge signs for a command-line
// sign-in to app from port, bound to b.
func (e *testEnv) cliRequest(t testing.TB, app string, port int, b string) appreq.Request {
	t.Helper()
	r := e.mesh.request(t, app, "/", b)
	r.CLIPort = port
	return r
}

// TestCLIHandoff: the loopback port of a command-line sign-in comes from
// the signed app request alone, survives the provider's round trip in the
// sealed flow cookie, and yields a CLI-marked app token bound to the
// client's nonce hash behind a confirmation page.
func TestCLIHandoff(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	sess := cookieNamed(w, SessionCookie)
	b := newBinding()
	// With a session: the confirmation page at once.
	w2 := e.get(e.authorizeRequest(t, e.cliRequest(t, "smartmoney", 54321, b)), sess)
	ac := e.cliToken(t, w2, "54321", "smartmoney.localhost")
	if !ac.CLI || ac.Binding != b || ac.AppID != "smartmoney" {
		t.Errorf("got cli %v bh %q app %q, want a CLI token bound to %q", ac.CLI, ac.Binding, ac.AppID, b)
	}
	if !strings.Contains(w2.Body.String(), "alice@example.com") || !strings.Contains(w2.Body.String(), "smartmoney") {
		t.Errorf("the page does not name the user and the app: %s", w2.Body)
	}
	// Without a session: the port survives the provider's round trip.
	s := e.startCLI(t, "wiki", 40000)
	w3 := e.finish(s, e.op.sign(t, e.claims(s, nil), false))
	if ac := e.cliToken(t, w3, "40000", "wiki.localhost"); !ac.CLI || ac.Binding != s.b {
		t.Errorf("token after a sign-in: cli %v binding %q, want a CLI token bound to %q", ac.CLI, ac.Binding, s.b)
	}
	// A browser's handoff is unchanged: no CLI mark.
	if ac := e.appToken(t, e.get(e.authorizePath(t, "wiki", "/", b), sess), "wiki.localhost"); ac.CLI {
		t.Error("a browser's token is marked CLI")
	}

	// Hostile: a port anywhere but in the signed request.
	browser := e.authorizePath(t, "wiki", "/", b)
	cli := e.authorizeRequest(t, e.cliRequest(t, "wiki", 40000, b))
	for name, target := range map[string]string{
		"cli beside a browser's request":         browser + "&cli=40000",
		"cli beside a command-line request":      cli + "&cli=40001",
		"empty cli beside a browser's request":   browser + "&cli=",
		"the unsigned parameters of an old edge": "/authorize?" + url.Values{"app": {"wiki"}, "rd": {"/"}, "b": {b}, "cli": {"40000"}}.Encode(),
	} {
		t.Run(name, func(t *testing.T) { assertRefused(t, e.get(target, sess), http.StatusBadRequest) })
	}
	// Hostile: the signed port changed in transit (to a privileged port,
	// another user program's, out of range) breaks the node's signature.
	signed := e.mesh.sign(t, e.cliRequest(t, "wiki", 40000, b), e.clock.Now)
	parts := strings.Split(signed, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), `"cli":40000`) {
		t.Fatalf("signed request payload %s: want \"cli\":40000", payload)
	}
	for _, port := range []string{"80", "0", "40001", "65536", `"40000"`, "-1"} {
		edited := strings.Replace(string(payload), `"cli":40000`, `"cli":`+port, 1)
		tok := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(edited)) + "." + parts[2]
		w := e.get("/authorize?"+url.Values{appreq.Param: {tok}}.Encode(), sess)
		assertRefused(t, w, http.StatusBadRequest)
		if !strings.Contains(w.Body.String(), "Sign-in link invalid") {
			t.Errorf("cli %s: not refused as a bad signed request: %s", port, w.Body)
		}
	}
}

// startCLI is start for a command-line client's sign-in from port.
func (e *testEnv) startCLI(t testing.TB, app string, port int) *started {
	t.Helper()
	b := newBinding()
	w := e.get(e.authorizeRequest(t, e.cliRequest(t, app, port, b)))
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: got %d, want 302 to the provider", w.Code)
	}
	u, _ := url.Parse(w.Header().Get("Location"))
	q := u.Query()
	return &started{flow: cookieNamed(w, FlowCookie), state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), authURL: u, b: b}
}
