package authfn

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPrincipalID pins the OIDC user id format: operators write these ids
// into catalogues, so it must never change. The expected values were
// computed independently (Python hashlib: base64url(sha256(iss)[:9])).
func TestPrincipalID(t *testing.T) {
	for _, tc := range []struct{ iss, user, want string }{
		{"https://dex.example.com", "CiQwOGE4Njg0Yi1kYjg4", "fZpSHFcADy0e/CiQwOGE4Njg0Yi1kYjg4"},
		{"https://dex.example.com/", "u-42", "NVb7gkyVu4Ja/u-42"}, // a trailing slash is another issuer
	} {
		if got := PrincipalID(tc.iss, tc.user); got != tc.want {
			t.Errorf("PrincipalID(%q, %q) = %q, want %q", tc.iss, tc.user, got, tc.want)
		}
	}
	c := idClaims{Issuer: "https://dex.example.com", ObjectID: "u-42"}
	if got, err := c.subject(ModeOIDC); err != nil || got != PrincipalID(c.Issuer, "u-42") {
		t.Errorf("the sign-in subject %q (%v) is not PrincipalID's", got, err)
	}
}

// TestWhoami signs in through a generic OIDC provider and checks that
// /whoami shows the id that policies name, escapes what the provider sent,
// and shows nothing for a missing, forged or expired session.
func TestWhoami(t *testing.T) {
	e := newTestEnv(t, oidcMode)
	_, w := e.signIn(t, "wiki", map[string]any{
		"iss": e.op.URL() + "/plain", "uid": "u-42", "tid": nil, "oid": nil,
		"display": `<script>alert(1)</script>Carol`, "email": `c@example.com"><img src=x>`,
	})
	sess := cookieNamed(w, SessionCookie)
	if sess == nil {
		t.Fatalf("no session cookie; status %d", w.Code)
	}
	page := e.get("/whoami", sess)
	body := page.Body.String()
	want := PrincipalID(e.op.URL()+"/plain", "u-42")
	if page.Code != http.StatusOK || !strings.Contains(body, `<code id="principal">`+want+`</code>`) {
		t.Fatalf("status %d, page lacks the principal id %s:\n%s", page.Code, want, body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<img") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;Carol") {
		t.Errorf("the page does not escape the provider's claims:\n%s", body)
	}
	if h := page.Header(); h.Get("Cache-Control") != "no-store" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers %v: want no-store and a CSP", h)
	}
	forged := *sess
	forged.Value = sess.Value[:len(sess.Value)-4] + "AAAA"
	for name, c := range map[string]*http.Cookie{"none": nil, "forged": &forged, "garbage": {Name: SessionCookie, Value: "x.y.z"}} {
		var cs []*http.Cookie
		if c != nil {
			cs = append(cs, c)
		}
		p := e.get("/whoami", cs...)
		if b := p.Body.String(); p.Code != http.StatusOK || !strings.Contains(b, `id="anonymous"`) || strings.Contains(b, "u-42") {
			t.Errorf("%s session: status %d, page\n%s", name, p.Code, b)
		}
	}
	e.clock.Add(DefaultSessionLifetime + time.Minute)
	if b := e.get("/whoami", sess).Body.String(); !strings.Contains(b, `id="anonymous"`) {
		t.Errorf("an expired session still shows:\n%s", b)
	}
}

// TestGroupsClaimMissingWarns checks that a generic provider's ID token
// without any groups claim, at the sign-in to an app that admits users by
// group, is logged with the fix (the scope to request), and that an empty
// groups claim, Entra mode or an app that names no group is not.
func TestGroupsClaimMissingWarns(t *testing.T) {
	for _, tc := range []struct {
		name, app string
		cfg       func(*Config)
		claim     map[string]any
		warn      bool
	}{
		{"oidc without groups claim", "smartmoney", oidcMode, map[string]any{"groups": nil}, true},
		{"oidc without groups claim, app without groups", "wiki", oidcMode, map[string]any{"groups": nil}, false},
		{"oidc with empty groups", "smartmoney", oidcMode, map[string]any{"groups": []string{}}, false},
		{"oidc with groups", "smartmoney", oidcMode, nil, false},
		{"entra without groups claim", "smartmoney", nil, map[string]any{"groups": nil}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.cfg)
			mutate := map[string]any{}
			if tc.cfg != nil {
				mutate = map[string]any{"iss": e.op.URL() + "/plain", "uid": "u-7", "tid": nil, "oid": nil}
			}
			for k, v := range tc.claim {
				mutate[k] = v
			}
			_, w := e.signIn(t, tc.app, mutate)
			if w.Code != http.StatusFound {
				t.Fatalf("sign-in status %d: %s", w.Code, w.Body)
			}
			logs := e.logs.String()
			if got := strings.Contains(logs, "auth_groups_claim_missing"); got != tc.warn {
				t.Fatalf("warned %v, want %v; logs:\n%s", got, tc.warn, logs)
			}
			if tc.warn && (!strings.Contains(logs, "POSTERN_OIDC_SCOPES") || !strings.Contains(logs, "claim=groups")) {
				t.Errorf("the warning lacks the fix or the claim name:\n%s", logs)
			}
		})
	}
}
