package authfn

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/session"
)

// TestNewAppWithoutRedeploy: an app the functions have never heard of
// signs in as soon as a mesh node's catalogue has it — the functions hold
// no catalogue, only the mesh authority's public key.
func TestNewAppWithoutRedeploy(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mesh.cat = mustCatalog(t, testCatalog+`
  - id: payroll
    host: payroll.apps.example.com
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: entra
    session_lifetime: 30m
    policy:
      allow: { groups: ["`+groupNone+`"] }
`)
	s := e.start(t, "payroll", "/run")
	ac := e.appToken(t, e.finish(s, e.op.sign(t, e.claims(s, nil), false)), "payroll.apps.example.com")
	if ac.AppID != "payroll" || ac.ReturnPath != "/run" || ac.Expiry-ac.IssuedAt != 30*60 || !slices.Equal(ac.Groups, []string{groupNone}) {
		t.Errorf("got app token %+v, want payroll's, 30m, with the group its policy names", ac)
	}
}

// TestSessionFilter: the global session keeps only the groups and roles
// some policy of the catalogue names, and a catalogue whose policies name
// other groups does not use it for a group-gated app (the user signs in
// again, silently), while an app that names none still does.
func TestSessionFilter(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "smartmoney", map[string]any{"groups": []string{groupMoney, groupNone, groupOther}})
	sess := cookieNamed(w, SessionCookie)
	sc, err := session.NewVerifier(session.VerifierConfig{Static: e.keys.JWKS(), Now: e.clock.Now}).VerifySession(t.Context(), sess.Value, "auth.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{groupMoney, groupOther}; !slices.Equal(sc.Groups, want) || !slices.Equal(sc.Roles, []string{"SmartMoney.User"}) {
		t.Errorf("session keeps groups %v roles %v, want %v and [SmartMoney.User]", sc.Groups, sc.Roles, want)
	}
	if sc.NoticeHost != "smartmoney.localhost" || sc.Filter == "" {
		t.Errorf("session notice host %q filter %q, want smartmoney.localhost and a digest", sc.NoticeHost, sc.Filter)
	}
	// Same catalogue: silent handoff.
	e.appToken(t, e.get(e.authorizePath(t, "smartmoney", "/", newBinding()), sess), "smartmoney.localhost")
	// The catalogue now names groupNone too: the session cannot know it.
	e.mesh.cat = mustCatalog(t, strings.Replace(testCatalog, `allow: { groups: ["`+groupOther+`"] }`, `allow: { groups: ["`+groupOther+`", "`+groupNone+`"] }`, 1))
	s := e.start(t, "smartmoney", "/", sess)
	if s.authURL.Query().Get("prompt") != "" {
		t.Errorf("re-sign-in for a new filter asks prompt=%q, want a silent one", s.authURL.Query().Get("prompt"))
	}
	// wiki names no group or role: the session serves it still.
	e.appToken(t, e.get(e.authorizePath(t, "wiki", "/", newBinding()), sess), "wiki.localhost")
}

// TestTenantsCut: an app whose policy counts the groups and roles of some
// tenants only gets a token without those of a user from another tenant.
func TestTenantsCut(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "smartmoney", nil)
	sess := cookieNamed(w, SessionCookie)
	for _, tt := range []struct {
		tenants    []string
		wantGroups bool
	}{{nil, true}, {[]string{tenantA}, true}, {[]string{tenantB}, false}} {
		r := e.mesh.request(t, "smartmoney", "/", newBinding())
		r.Tenants = tt.tenants
		ac := e.appToken(t, e.get(e.authorizeRequest(t, r), sess), "smartmoney.localhost")
		if got := len(ac.Groups)+len(ac.Roles) > 0; got != tt.wantGroups {
			t.Errorf("tenants %v: got groups %v roles %v, want some: %v", tt.tenants, ac.Groups, ac.Roles, tt.wantGroups)
		}
	}
}

// TestLogoutNoticeHost: a sign-out through an app's mesh node carries the
// notice to that app's host (from its signed request), a forged request
// carries none, and a sign-out at the auth host alone uses the host the
// session was signed in for.
func TestLogoutNoticeHost(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	sess := cookieNamed(w, SessionCookie)
	logout := func(q url.Values) *url.URL {
		t.Helper()
		w := e.get("/logout?"+q.Encode(), sess)
		if w.Code != http.StatusFound {
			return nil
		}
		loc, _ := url.Parse(w.Header().Get("Location"))
		return loc
	}
	signed := e.mesh.sign(t, e.mesh.request(t, "smartmoney", "", ""), e.clock.Now)
	if loc := logout(url.Values{"app": {"smartmoney"}, appreq.Param: {signed}}); loc == nil || loc.Host != "smartmoney.localhost:8443" {
		t.Errorf("signed sign-out: got %v, want smartmoney's /.postern/logout", loc)
	}
	other := newTestMesh(t, e.clock.Now())
	forged := other.sign(t, other.request(t, "smartmoney", "", ""), e.clock.Now)
	if loc := logout(url.Values{"app": {"smartmoney"}, appreq.Param: {forged}}); loc != nil {
		t.Errorf("forged sign-out request: got a redirect to %v, want the page", loc)
	}
	if loc := logout(url.Values{}); loc == nil || loc.Host != "wiki.localhost:8443" {
		t.Errorf("sign-out at the auth host: got %v, want wiki's /.postern/logout", loc)
	}
}
