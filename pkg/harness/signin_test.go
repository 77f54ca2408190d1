package harness

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/devidp"
)

func browserish(tb testing.TB, h *Harness) *http.Client { return h.Browser() }

func navigate(tb testing.TB, c *http.Client, u, user, stopAt string) (*http.Response, string) {
	tb.Helper()
	resp, body, err := Navigate(tb.Context(), c, u, user, stopAt)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, body
}

func TestSignInHandoffAndPolicy(t *testing.T) {
	h := start(t, Options{Auth: true})
	c := browserish(t, h)
	resp, body := navigate(t, c, h.AppURL(0, "/headers"), "alice", "")
	if resp.StatusCode != 200 || resp.Request.URL.Host != strings.TrimPrefix(h.AppURL(0, ""), "https://") {
		t.Fatalf("after sign-in: got %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	var got headersReply
	json.Unmarshal([]byte(body), &got)
	hd := http.Header(got.Headers)
	if sub := hd.Get("X-Postern-User"); !strings.HasPrefix(sub, devidp.DemoTenantID+"/") {
		t.Errorf("X-Postern-User: got %q, want <tid>/<oid>", sub)
	}
	if hd.Get("X-Postern-Assertion") == "" || hd.Get("X-Postern-Name") == "" {
		t.Errorf("identity headers missing: %v", hd)
	}
	if strings.Contains(hd.Get("Cookie"), "__Host-postern") {
		t.Errorf("Postern cookie reached the backend: %q", hd.Get("Cookie"))
	}
	// A path rule denies alice, with a page naming the app (by its display
	// name), the user and why.
	resp, body = navigate(t, c, h.AppURL(0, "/admin"), "", "")
	if resp.StatusCode != 403 || !strings.Contains(body, "may not use SmartMoney:") || !strings.Contains(body, "alice") || !strings.Contains(body, "SmartMoney.Admin") {
		t.Fatalf("/admin for alice: got %d %s", resp.StatusCode, body)
	}
	// Sneaky spellings of /admin are denied too (the sample app serves
	// /admin, so a spelling that slipped past the policy would get 200).
	for _, p := range []string{"/Admin", "//admin", "/./admin", "/%61dmin", "/public/%2e%2e/admin", "/admin;x"} {
		resp, _ := navigate(t, c, h.AppURL(0, p), "", "")
		if resp.StatusCode == 200 {
			t.Errorf("%s: got 200, want a refusal", p)
		}
	}
	// Non-browser clients get a 401, not a redirect.
	req, _ := http.NewRequest("GET", h.AppURL(0, "/headers"), nil)
	req.Header.Set("Accept", "application/json")
	r2, err := localClient(h.CA).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 || !strings.HasPrefix(r2.Header.Get("WWW-Authenticate"), "Postern") {
		t.Fatalf("API client: got %d %q, want 401 with WWW-Authenticate", r2.StatusCode, r2.Header.Get("WWW-Authenticate"))
	}
}

func TestHandoffRefusals(t *testing.T) {
	h := start(t, Options{Auth: true})
	// Alice's browser signs in, but stops before the callback.
	alice := browserish(t, h)
	resp, _ := navigate(t, alice, h.AppURL(0, "/headers"), "alice", "/.postern/callback")
	if resp.StatusCode != 302 {
		t.Fatalf("no handoff redirect: %d", resp.StatusCode)
	}
	callback := resp.Header.Get("Location")
	// Another browser replays alice's handoff link: refused, nothing set.
	mallory := browserish(t, h)
	r, body := navigate(t, mallory, callback, "", "")
	if r.StatusCode != 400 || !strings.Contains(body, "another browser") || len(r.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("replay in another browser: got %d %v %s", r.StatusCode, r.Header.Values("Set-Cookie"), body)
	}
	// A tampered token is refused.
	r, _ = navigate(t, alice, strings.Replace(callback, "token=", "token=x", 1), "", "")
	if r.StatusCode != 400 {
		t.Fatalf("tampered token: got %d, want 400", r.StatusCode)
	}
	// The same token presented on another app's host is refused.
	other := strings.Replace(callback, h.AppHost, "other.localhost", 1)
	r, _ = navigate(t, alice, other, "", "")
	if r.StatusCode == 302 {
		t.Fatalf("token for smartmoney accepted on another host")
	}
	// Alice's own browser completes the handoff.
	r, body = navigate(t, alice, callback, "", "")
	if r.StatusCode != 200 {
		t.Fatalf("own handoff: got %d %s", r.StatusCode, body)
	}
	// The cookie the mesh set works for API clients too, and SignIn gets one.
	ck, err := h.SignIn(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", h.AppURL(0, "/admin"), nil)
	req.AddCookie(ck)
	r3, err := localClient(h.CA).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode == 401 || r3.StatusCode == 403 {
		t.Fatalf("bob's cookie on /admin: got %d", r3.StatusCode)
	}
	if r, _ := navigate(t, browserish(t, h), h.OpenAppURL(0, "/hello"), "", ""); r.StatusCode != 200 {
		t.Fatalf("passthrough app next to a pre-auth one: got %d", r.StatusCode)
	}
	// A forged app cookie is not accepted.
	forged := browserish(t, h)
	u, _ := url.Parse(h.AppURL(0, "/"))
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-postern", Value: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Path: "/", Secure: true}})
	r, _ = navigate(t, forged, h.AppURL(0, "/headers"), "", h.AuthURL())
	if r.StatusCode != 302 {
		t.Fatalf("forged cookie: got %d, want a redirect to sign in", r.StatusCode)
	}
}
