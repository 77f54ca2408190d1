package authfn

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/session"
)

// TestSignInSingleTenant runs a whole sign-in and checks the app token and
// the cookies.
func TestSignInSingleTenant(t *testing.T) {
	e := newTestEnv(t, nil)
	s, w := e.signIn(t, "smartmoney", nil)
	ac := e.appToken(t, w, "smartmoney.localhost")
	want := map[string]any{
		"sub": tenantA + "/0000aaaa-0000-4000-8000-00000000beef", "aud": "smartmoney.localhost", "app": "smartmoney",
		"bh": s.b, "rd": "/x?y=1", "groups": []string{groupMoney}, "roles": []string{"SmartMoney.User"},
		"exp": e.clock.Now().Add(time.Hour).Unix(), "iss": authURL,
	}
	got := map[string]any{
		"sub": ac.Subject, "aud": ac.Audience, "app": ac.AppID, "bh": ac.Binding, "rd": ac.ReturnPath,
		"groups": ac.Groups, "roles": ac.Roles, "exp": ac.Expiry, "iss": ac.Issuer,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("app token claims (-want +got):\n%s", d)
	}
	sess, flow := cookieNamed(w, SessionCookie), cookieNamed(w, FlowCookie)
	if sess == nil || !sess.HttpOnly || !sess.Secure || sess.Path != "/" || sess.SameSite != http.SameSiteLaxMode || sess.MaxAge != int(DefaultSessionLifetime/time.Second) {
		t.Errorf("got session cookie %+v, want HttpOnly Secure Path=/ SameSite=Lax Max-Age=12h", sess)
	}
	if flow == nil || flow.MaxAge >= 0 {
		t.Errorf("got flow cookie %+v, want it cleared", flow)
	}
	// The provider saw PKCE S256 and a nonce.
	q := s.authURL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("redirect_uri") != authURL+"/callback" {
		t.Errorf("got authorization request %v, want PKCE S256, nonce and redirect_uri", q)
	}
	if strings.Contains(e.logs.String(), "s3cret-value") || strings.Contains(e.logs.String(), "eyJ") {
		t.Errorf("logs contain a secret or token:\n%s", e.logs)
	}
}

// TestClaimCases checks how ID token claims become the session identity.
func TestClaimCases(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(*Config)
		app      string
		claims   map[string]any
		graph    func(op *fakeOP)
		status   int
		wantSub  string
		groups   []string
		roles    []string
		acrs     []string
		noGroups bool // groups unavailable
	}{
		{name: "member", app: "smartmoney", status: 302, wantSub: tenantA + "/0000aaaa-0000-4000-8000-00000000beef",
			groups: []string{groupMoney}, roles: []string{"SmartMoney.User"}},
		{name: "e-mail is not the identity", app: "wiki", claims: map[string]any{"email": "bob@example.com", "preferred_username": "bob@example.com"},
			status: 302, wantSub: tenantA + "/0000aaaa-0000-4000-8000-00000000beef"},
		{name: "guest of the tenant", app: "wiki", claims: map[string]any{"idp": "https://sts.windows.net/" + tenantB + "/", "oid": "guest-oid"},
			status: 302, wantSub: tenantA + "/guest-oid"},
		{name: "user of another tenant", app: "wiki", claims: map[string]any{"iss": "ISSUER_B", "tid": tenantB}, status: 400},
		{name: "multi-tenant allowed tenant", app: "wiki", cfg: multiTenant, claims: map[string]any{"iss": "ISSUER_B", "tid": tenantB},
			status: 302, wantSub: tenantB + "/0000aaaa-0000-4000-8000-00000000beef"},
		{name: "multi-tenant tenant not allowed", app: "wiki", cfg: multiTenant, claims: map[string]any{"iss": "ISSUER_C", "tid": tenantC}, status: 400},
		{name: "multi-tenant iss of another tenant", app: "wiki", cfg: multiTenant, claims: map[string]any{"iss": "ISSUER_A", "tid": tenantB}, status: 400},
		{name: "multi-tenant foreign issuer host", app: "wiki", cfg: multiTenant, claims: map[string]any{"iss": "https://evil.example/" + tenantB + "/v2.0", "tid": tenantB}, status: 400},
		{name: "overage graph success", app: "smartmoney", claims: overage,
			graph:  func(op *fakeOP) { op.graphIDs = []string{groupNone, groupMoney, groupOther} },
			status: 302, groups: []string{groupMoney}, roles: []string{"SmartMoney.User"}},
		{name: "overage graph failure group-gated app", app: "smartmoney", claims: overage,
			graph: func(op *fakeOP) { op.graphCode = 503 }, status: 403},
		{name: "overage graph failure ungated app", app: "wiki", claims: overage,
			graph: func(op *fakeOP) { op.graphCode = 503 }, status: 302, noGroups: true},
		{name: "roles cut to the policy", app: "smartmoney", claims: map[string]any{"roles": []string{"Other", "SmartMoney.User"}},
			status: 302, groups: []string{groupMoney}, roles: []string{"SmartMoney.User"}},
		{name: "acrs present", app: "vault", claims: map[string]any{"acrs": []string{"c1"}, "groups": []string{groupOther}},
			status: 302, groups: []string{groupOther}, acrs: []string{"c1"}},
		{name: "acrs absent", app: "vault", claims: map[string]any{"groups": []string{groupOther}}, status: 403},
		{name: "acrs other", app: "vault", claims: map[string]any{"acrs": []string{"c2"}, "groups": []string{groupOther}}, status: 403},
		{name: "oidc claim mapping", app: "wiki", cfg: oidcMode, claims: map[string]any{"iss": "ISSUER_PLAIN", "uid": "u-42", "display": "Carol", "tid": nil, "oid": nil},
			status: 302, wantSub: issuerID("ISSUER_PLAIN") + "/u-42"},
		{name: "oidc missing user id", app: "wiki", cfg: oidcMode, claims: map[string]any{"iss": "ISSUER_PLAIN"}, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, tt.cfg)
			if tt.graph != nil {
				tt.graph(e.op)
			}
			s := e.start(t, tt.app, "/")
			claims := e.claims(s, tt.claims)
			if iss, ok := claims["iss"].(string); ok {
				iss = strings.NewReplacer("ISSUER_PLAIN", e.op.URL()+"/plain",
					"ISSUER_A", e.op.URL()+"/"+tenantA+"/v2.0", "ISSUER_B", e.op.URL()+"/"+tenantB+"/v2.0",
					"ISSUER_C", e.op.URL()+"/"+tenantC+"/v2.0").Replace(iss)
				claims["iss"] = iss
			}
			if tt.wantSub != "" && strings.HasPrefix(tt.wantSub, issuerID("ISSUER_PLAIN")) {
				tt.wantSub = issuerID(e.op.URL()+"/plain") + "/u-42"
			}
			w := e.finish(s, e.op.sign(t, claims, false))
			if tt.status != http.StatusFound {
				assertRefused(t, w, tt.status)
				return
			}
			host := map[string]string{"smartmoney": "smartmoney.localhost", "wiki": "wiki.localhost", "vault": "vault.localhost"}[tt.app]
			ac := e.appToken(t, w, host)
			if tt.wantSub != "" && ac.Subject != tt.wantSub {
				t.Errorf("got sub %q, want %q", ac.Subject, tt.wantSub)
			}
			if !slices.Equal(ac.Groups, tt.groups) || !slices.Equal(ac.Roles, tt.roles) || !slices.Equal(ac.ACRs, tt.acrs) {
				t.Errorf("got groups %v roles %v acrs %v, want %v %v %v", ac.Groups, ac.Roles, ac.ACRs, tt.groups, tt.roles, tt.acrs)
			}
			if got := cookieNamed(w, SessionCookie) == nil; got != tt.noGroups {
				t.Errorf("got no global session %v, want %v (groups unavailable)", got, tt.noGroups)
			}
		})
	}
}

var overage = map[string]any{
	"groups":         nil,
	"_claim_names":   map[string]any{"groups": "src1"},
	"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://graph.windows.net/x/users/y/getMemberObjects"}},
}

func multiTenant(c *Config) { c.TenantID, c.AllowedTenants = "", []string{tenantA, tenantB} }

func oidcMode(c *Config) {
	c.Mode, c.TenantID = ModeOIDC, ""
	c.Issuer = c.EntraAuthorityBase + "/plain"
	c.ClaimMapping = ClaimMapping{UserID: "uid", Name: "display"}
}

// TestACRsRequested checks that an app requiring an authentication context
// asks for it through the claims parameter, and others do not.
func TestACRsRequested(t *testing.T) {
	e := newTestEnv(t, nil)
	if got := e.start(t, "wiki", "/").authURL.Query().Get("claims"); got != "" {
		t.Errorf("wiki: got claims %q, want none", got)
	}
	raw := e.start(t, "vault", "/").authURL.Query().Get("claims")
	var got map[string]map[string]struct {
		Essential bool
		Values    []string
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("claims %q: %v", raw, err)
	}
	if a := got["id_token"]["acrs"]; !a.Essential || !slices.Equal(a.Values, []string{"c1"}) {
		t.Errorf("got claims %s, want id_token.acrs essential [c1]", raw)
	}
}

// TestSilentReHandoff checks that a valid global session mints an app
// token without the provider, and that an old one forces prompt=login.
func TestSilentReHandoff(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "vault", map[string]any{"acrs": []string{"c1"}, "groups": []string{groupOther}})
	sess := cookieNamed(w, SessionCookie)
	b := newBinding()
	w2 := e.get(e.authorizePath(t, "smartmoney", "/a", b), sess)
	ac := e.appToken(t, w2, "smartmoney.localhost")
	if ac.Binding != b || ac.ReturnPath != "/a" || ac.SessionID == "" {
		t.Errorf("got bh %q rd %q sid %q, want %q /a and a session id", ac.Binding, ac.ReturnPath, ac.SessionID, b)
	}
	if len(w2.Header().Values("Set-Cookie")) != 0 {
		t.Errorf("silent handoff set cookies %q, want none", w2.Header().Values("Set-Cookie"))
	}
	// vault has max_session_age 1h: after 2h the user must sign in again.
	e.clock.Add(2 * time.Hour)
	s := e.start(t, "vault", "/", sess)
	if q := s.authURL.Query(); q.Get("prompt") != "login" || q.Get("max_age") != "3600" {
		t.Errorf("got prompt %q max_age %q, want login 3600", q.Get("prompt"), q.Get("max_age"))
	}
	// wiki has no max age: still silent.
	e.appToken(t, e.get(e.authorizePath(t, "wiki", "/", b), sess), "wiki.localhost")
	// After the session expires, sign-in starts again.
	e.clock.Add(DefaultSessionLifetime)
	if q := e.start(t, "wiki", "/", sess).authURL.Query(); q.Get("prompt") != "" {
		t.Errorf("got prompt %q after expiry, want none", q.Get("prompt"))
	}
}

// TestSessionWithoutACRsStepsUp checks that a session lacking an app's
// authentication context starts a new sign-in asking for it.
func TestSessionWithoutACRsStepsUp(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "wiki", nil)
	s := e.start(t, "vault", "/", cookieNamed(w, SessionCookie))
	if !strings.Contains(s.authURL.Query().Get("claims"), `"c1"`) {
		t.Errorf("got claims %q, want a request for c1", s.authURL.Query().Get("claims"))
	}
}

// TestPathRuleStepUp checks that a session lacking the authentication
// context of the return path's rule asks for it, and keeps the app's.
func TestPathRuleStepUp(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w := e.signIn(t, "smartmoney", map[string]any{"roles": []string{"SmartMoney.User", "SmartMoney.Admin"}})
	sess := cookieNamed(w, SessionCookie)
	e.appToken(t, e.get(e.authorizePath(t, "smartmoney", "/public", newBinding()), sess), "smartmoney.localhost")
	s := e.start(t, "smartmoney", "/admin/x?y", sess)
	if got := s.authURL.Query().Get("claims"); !strings.Contains(got, `"c2"`) {
		t.Errorf("got claims %q, want a request for c2", got)
	}
}

// TestForgedSessionIgnored checks that a session signed by another key set
// is not honoured.
func TestForgedSessionIgnored(t *testing.T) {
	e := newTestEnv(t, nil)
	other := newTestEnv(t, nil)
	_, w := other.signIn(t, "wiki", nil)
	e.start(t, "wiki", "/", cookieNamed(w, SessionCookie)) // fails the test unless it redirects to the provider
}

// TestAudienceAndAuthorizedParty accepts an ID token whose aud is our
// client id alone (as a string or a one-item list), with or without an
// azp naming us.
func TestAudienceAndAuthorizedParty(t *testing.T) {
	for _, m := range []map[string]any{
		{"aud": clientID},
		{"aud": []string{clientID}},
		{"aud": []string{clientID}, "azp": clientID},
		{"aud": []string{clientID, clientID}, "azp": clientID},
	} {
		e := newTestEnv(t, nil)
		if _, w := e.signIn(t, "wiki", m); w.Code != http.StatusFound {
			t.Errorf("%v: got %d %s, want the handoff", m, w.Code, w.Body)
		}
	}
}

// TestTwoTabs starts two sign-ins in one browser, as two tabs do after a
// session expired, and completes them in both orders: each keeps its own
// flow cookie, so both succeed.
func TestTwoTabs(t *testing.T) {
	for _, firstDone := range []int{0, 1} {
		e := newTestEnv(t, nil)
		tabs := [2]*started{e.start(t, "wiki", "/a"), e.start(t, "smartmoney", "/b")}
		if tabs[0].flow.Name == tabs[1].flow.Name {
			t.Fatalf("both tabs got the flow cookie %s", tabs[0].flow.Name)
		}
		for _, i := range []int{firstDone, 1 - firstDone} {
			s := tabs[i]
			code := e.op.issue(s.challenge, e.op.sign(t, e.claims(s, nil), false))
			// The browser sends every cookie it holds for the auth host.
			w := e.get("/callback?"+url.Values{"code": {code}, "state": {s.state}}.Encode(), tabs[0].flow, tabs[1].flow)
			if w.Code != http.StatusFound || !strings.Contains(w.Header().Get("Location"), "/.postern/callback?token=") {
				t.Fatalf("tab %d of 2 (first done: %d): got %d %s", i+1, firstDone, w.Code, w.Body)
			}
			if c := cookieNamed(w, FlowCookie); c == nil || c.Name != s.flow.Name || c.MaxAge >= 0 {
				t.Errorf("tab %d: got flow cookie %+v, want its own cleared", i+1, c)
			}
		}
	}
}

// TestFlowCookiesBounded starts more sign-ins than a browser keeps: the
// older flow cookies are dropped, so the cookie header stays bounded.
func TestFlowCookiesBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	jar := map[string]*http.Cookie{}
	for i := range session.MaxFlowCookies * 3 {
		var held []*http.Cookie
		for _, c := range jar {
			held = append(held, c)
		}
		w := e.get(e.authorizePath(t, "wiki", "/", newBinding()), held...)
		if w.Code != http.StatusFound {
			t.Fatalf("sign-in %d: got %d", i, w.Code)
		}
		for _, c := range w.Result().Cookies() {
			if c.MaxAge < 0 {
				delete(jar, c.Name)
			} else {
				jar[c.Name] = c
			}
		}
		if len(jar) > session.MaxFlowCookies {
			t.Fatalf("after sign-in %d the browser holds %d flow cookies, want at most %d", i, len(jar), session.MaxFlowCookies)
		}
	}
}
