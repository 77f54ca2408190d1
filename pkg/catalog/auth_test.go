package catalog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/policy"
	"github.com/postern/postern/pkg/session"
)

func TestExamplePolicy(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("smartmoney")
	if a.PreAuth != PreAuthEntra || a.SessionLifetime != 8*time.Hour || a.MaxSessionAge != 24*time.Hour || a.PathCase != PathCaseInsensitive {
		t.Fatalf("got %+v, want entra, 8h, 24h, insensitive", a)
	}
	if a.IdentityHeaders != DefaultIdentityHeaders {
		t.Errorf("got headers %+v, want %+v", a.IdentityHeaders, DefaultIdentityHeaders)
	}
	home := c.HomeTenant()
	id := &session.Identity{Subject: home + "/o", TenantID: home, Roles: []string{"SmartMoney.User"}, ACRs: []string{"c1"}, AuthTime: time.Now().Unix()}
	d := a.Policy.Decide(id, policy.Request{RawPath: "/ADMIN/x", ClientIP: netip.MustParseAddr("10.0.0.1")})
	if d.Allow || !strings.Contains(d.Reason, "SmartMoney.Admin for /admin") {
		t.Errorf("got %+v, want denied by the /admin rule", d)
	}
	if d := a.Policy.Decide(id, policy.Request{RawPath: "/x", ClientIP: netip.MustParseAddr("10.0.0.1")}); !d.Allow {
		t.Errorf("home user: got %+v, want allowed", d)
	}
	partner := *id
	partner.TenantID = "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"
	partner.Subject = partner.TenantID + "/o"
	if d := a.Policy.Decide(&partner, policy.Request{RawPath: "/x", ClientIP: netip.MustParseAddr("10.0.0.1")}); !d.Allow {
		t.Errorf("partner user: got %+v, want allowed", d)
	}
	partner.Roles = append(partner.Roles, "SmartMoney.Admin")
	partner.ACRs = append(partner.ACRs, "c2")
	if d := a.Policy.Decide(&partner, policy.Request{RawPath: "/admin", ClientIP: netip.MustParseAddr("10.0.0.1")}); d.Allow {
		t.Errorf("partner admin on /admin: got %+v, want denied", d)
	}
	if len(a.PassHeaders) != 1 || a.HSTS != DefaultHSTS {
		t.Errorf("got pass headers %v, HSTS %q", a.PassHeaders, a.HSTS)
	}
	if got := strings.Join(c.PolicyGroups(), ","); got != "5b3c1f7e-1111-4111-8111-000000000042" {
		t.Errorf("got policy groups %q, want the one group", got)
	}
	if got := strings.Join(c.PolicyRoles(), ","); got != "SmartMoney.Admin,SmartMoney.User" {
		t.Errorf("got policy roles %q, want SmartMoney.Admin,SmartMoney.User", got)
	}
	wiki, _ := c.App("wiki")
	if wiki.Policy != nil || wiki.SessionLifetime != 0 {
		t.Errorf("passthrough app: got policy %v lifetime %v, want none", wiki.Policy, wiki.SessionLifetime)
	}
}

func TestPreAuthDefaults(t *testing.T) {
	for _, mode := range []string{"entra", "oidc"} {
		t.Run(mode, func(t *testing.T) {
			c, err := Parse("catalog.yaml", []byte(appDoc(map[string]string{"preauth": mode})))
			if err != nil {
				t.Fatal(err)
			}
			a, _ := c.App("a")
			if a.SessionLifetime != DefaultSessionLifetime || a.MaxSessionAge != 0 || a.PathCase != PathCaseSensitive || a.IdentityHeaders != DefaultIdentityHeaders || a.Policy == nil {
				t.Fatalf("got %+v, want the documented defaults", a)
			}
			if d := a.Policy.Decide(&session.Identity{Subject: "t/o"}, policy.Request{RawPath: "/x"}); !d.Allow {
				t.Errorf("got %+v, want any signed-in user allowed", d)
			}
			if len(c.PolicyGroups()) != 0 {
				t.Errorf("got %v, want no policy groups", c.PolicyGroups())
			}
		})
	}
}

func TestIdentityHeadersOverride(t *testing.T) {
	c, err := Parse("catalog.yaml", []byte(appDoc(map[string]string{"preauth": "entra"},
		"    identity_headers:", "      user: x-remote-user", `      email: ""`)))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("a")
	want := DefaultIdentityHeaders
	want.User, want.Email = "X-Remote-User", ""
	if a.IdentityHeaders != want {
		t.Errorf("got %+v, want %+v", a.IdentityHeaders, want)
	}
}

func TestAuthKeyErrors(t *testing.T) {
	entra := map[string]string{"preauth": "entra"}
	tests := []errCase{
		{"policy on passthrough", appDoc(nil, "    policy: {}"), []wantErr{{9, ErrValue, `app "a": policy: only for preauth entra or oidc, not passthrough`}}},
		{"lifetime on passthrough", appDoc(nil, "    session_lifetime: 1h"), []wantErr{{9, ErrValue, "session_lifetime: only for preauth"}}},
		{"bad lifetime", appDoc(entra, "    session_lifetime: forever"), []wantErr{{9, ErrValue, `session_lifetime "forever": not a duration`}}},
		{"zero max age", appDoc(entra, "    max_session_age: 0s"), []wantErr{{9, ErrValue, "max_session_age \"0s\": must be greater than zero"}}},
		{"path case", appDoc(entra, "    path_case: upper"), []wantErr{{9, ErrValue, `path_case "upper": must be sensitive or insensitive`}}},
		{"policy unknown key", appDoc(entra, "    policy:", "      deny: {}"), []wantErr{{10, ErrUnknownKey, `unknown key "deny" (known keys: allow, require_acrs, require_scopes, source_cidrs, paths, tests)`}}},
		{"policy not a mapping", appDoc(entra, "    policy: [a]"), []wantErr{{9, ErrType, "policy: got a list, want a mapping"}}},
		{"allow unknown key", appDoc(entra, "    policy:", "      allow:", "        emails: [a@b.c]"), []wantErr{{11, ErrUnknownKey, `unknown key "emails"`}}},
		{"user as e-mail", appDoc(entra, "    policy:", "      allow:", "        users: [ada@example.com]"), []wantErr{{11, ErrValue, "never an e-mail"}}},
		{"groups not a list", appDoc(entra, "    policy:", "      allow: {groups: g1}"), []wantErr{{10, ErrType, "policy: allow: groups: got a string, want a list of strings"}}},
		{"repeated role", appDoc(entra, "    policy:", "      allow:", "        roles:", "          - R", "          - R"), []wantErr{{13, ErrDuplicate, `roles: "R" listed twice`}}},
		{"empty acr", appDoc(entra, "    policy:", `      require_acrs: [""]`), []wantErr{{10, ErrValue, "require_acrs"}}},
		{"bad cidr", appDoc(entra, "    policy:", "      source_cidrs:", "        - 10.0.0.0/8", "        - 10.1.2.3"), []wantErr{{12, ErrValue, `source_cidrs: "10.1.2.3": not a CIDR`}}},
		{"cidr host bits", appDoc(entra, "    policy:", "      source_cidrs: [10.1.2.3/8]"), []wantErr{{10, ErrValue, "did you mean 10.0.0.0/8"}}},
		{"path without prefix", appDoc(entra, "    policy:", "      paths:", "        - allow: {roles: [A]}"), []wantErr{{11, ErrMissing, `missing required key "prefix"`}}},
		{"relative prefix", appDoc(entra, "    policy:", "      paths:", "        - prefix: admin"), []wantErr{{11, ErrValue, `prefix "admin": must be a path starting with /`}}},
		{"encoded slash prefix", appDoc(entra, "    policy:", "      paths:", "        - prefix: /a%2fb"), []wantErr{{11, ErrValue, `prefix "/a%2fb"`}}},
		{"same prefix by case", appDoc(entra, "    path_case: insensitive", "    policy:", "      paths:", "        - prefix: /admin", "        - prefix: /Admin/"),
			[]wantErr{{13, ErrDuplicate, `prefix "/Admin/" is the same path as the prefix at line 12`}}},
		{"path rule unknown key", appDoc(entra, "    policy:", "      paths:", "        - prefix: /a", "          methods: [GET]"), []wantErr{{12, ErrUnknownKey, `unknown key "methods"`}}},
		{"header reserved", appDoc(entra, "    identity_headers:", "      user: Authorization"), []wantErr{{10, ErrValue, `user "Authorization": reserved header`}}},
		{"header invalid", appDoc(entra, "    identity_headers:", "      name: X Name"), []wantErr{{10, ErrValue, "not a valid header name"}}},
		{"header repeated", appDoc(entra, "    identity_headers:", "      name: X-Postern-User"), []wantErr{{10, ErrDuplicate, "header X-Postern-User is already used by user"}}},
		{"header unknown key", appDoc(entra, "    identity_headers:", "      phone: X-Phone"), []wantErr{{10, ErrUnknownKey, `unknown key "phone"`}}},
	}
	refuseAll(t, tests, withHome)
}

const (
	testHome    = "3f6c1a2e-8b4d-4c7e-9a15-0d2b7e6f4c81"
	testPartner = "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6"
)

// withHome adds home_tenant at the end of doc, so line numbers stay.
func withHome(doc string) string { return doc + "home_tenant: " + testHome + "\n" }

func TestTenantKeys(t *testing.T) {
	entra := map[string]string{"preauth": "entra"}
	ok := withHome(appDoc(entra, "    policy:", "      allow:", "        roles: [App.User]", "        tenants: ["+testPartner+"]",
		"      paths:", "        - prefix: /admin", "          allow: {roles: [App.Admin]}"))
	c, err := Parse("catalog.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.HomeTenant() != testHome {
		t.Errorf("got home tenant %q, want %q", c.HomeTenant(), testHome)
	}
	a, _ := c.App("a")
	partner := &session.Identity{Subject: testPartner + "/o", TenantID: testPartner, Roles: []string{"App.User", "App.Admin"}}
	if d := a.Policy.Decide(partner, policy.Request{RawPath: "/x"}); !d.Allow {
		t.Errorf("partner user on /x: got %+v, want allowed (the app accepts the partner)", d)
	}
	if d := a.Policy.Decide(partner, policy.Request{RawPath: "/admin"}); d.Allow {
		t.Errorf("partner admin on /admin: got %+v, want denied (home tenant only)", d)
	}
	home := &session.Identity{Subject: testHome + "/o", TenantID: testHome, Roles: []string{"App.User", "App.Admin"}}
	if d := a.Policy.Decide(home, policy.Request{RawPath: "/admin"}); !d.Allow {
		t.Errorf("home admin on /admin: got %+v, want allowed", d)
	}
	tests := []errCase{
		{"roles without home tenant", appDoc(entra, "    policy:", "      allow: {roles: [R]}"), []wantErr{{10, ErrMissing, "set home_tenant"}}},
		{"groups in a path rule without home tenant", appDoc(entra, "    policy:", "      paths:", "        - prefix: /a", "          allow: {groups: [g]}"), []wantErr{{10, ErrMissing, "set home_tenant"}}},
		{"bad home tenant", appDoc(nil) + "home_tenant: contoso.onmicrosoft.com\n", []wantErr{{9, ErrValue, `home_tenant "contoso.onmicrosoft.com": want an Entra tenant id`}}},
		{"upper-case home tenant", appDoc(nil) + "home_tenant: 3F6C1A2E-8B4D-4C7E-9A15-0D2B7E6F4C81\n", []wantErr{{9, ErrValue, "want an Entra tenant id"}}},
		{"home tenant a list", appDoc(nil) + "home_tenant: [a]\n", []wantErr{{9, ErrType, "home_tenant: got a list"}}},
		{"tenants on oidc", withHome(appDoc(map[string]string{"preauth": "oidc"}, "    policy:", "      allow: {roles: [R], tenants: ["+testPartner+"]}")), []wantErr{{10, ErrValue, "tenants: only for preauth entra"}}},
		{"tenants alone", withHome(appDoc(entra, "    policy:", "      allow: {users: [t/o], tenants: ["+testPartner+"]}")), []wantErr{{10, ErrValue, "tenants: only next to groups or roles"}}},
		{"tenants naming home", withHome(appDoc(entra, "    policy:", "      allow: {roles: [R], tenants: ["+testHome+"]}")), []wantErr{{10, ErrValue, "is the home tenant"}}},
		{"tenant not a GUID", withHome(appDoc(entra, "    policy:", "      allow: {roles: [R], tenants: [fabrikam]}")), []wantErr{{10, ErrValue, `tenants: "fabrikam": want an Entra tenant id`}}},
		{"rule tenants alone", withHome(appDoc(entra, "    policy:", "      paths:", "        - prefix: /a", "          allow: {tenants: ["+testPartner+"]}")), []wantErr{{12, ErrValue, "path rule #1: allow: tenants: only next to groups or roles"}}},
	}
	refuseAll(t, tests, nil)
}

func TestPassHeadersAndHSTS(t *testing.T) {
	c, err := Parse("catalog.yaml", []byte(appDoc(nil, "    pass_headers: [cf-connecting-ip, X-Forwarded-Prefix]", "    hsts_max_age: 1h")))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("a")
	if got := strings.Join(a.PassHeaders, ","); got != "Cf-Connecting-Ip,X-Forwarded-Prefix" {
		t.Errorf("got pass headers %q", got)
	}
	if !a.PassesHeader("CF-Connecting-IP") || a.PassesHeader("Cf_connecting_ip") || a.PassesHeader("X-Forwarded-For") {
		t.Errorf("PassesHeader: got the wrong answer for one of CF-Connecting-IP, Cf_connecting_ip, X-Forwarded-For")
	}
	if a.HSTS != "max-age=3600" {
		t.Errorf("got HSTS %q, want max-age=3600", a.HSTS)
	}
	for _, tt := range []struct{ v, want string }{{"0", ""}, {"0s", ""}, {"8760h", "max-age=31536000"}} {
		c, err := Parse("catalog.yaml", []byte(appDoc(nil, "    hsts_max_age: "+tt.v)))
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := c.App("a"); a.HSTS != tt.want {
			t.Errorf("hsts_max_age %s: got %q, want %q", tt.v, a.HSTS, tt.want)
		}
	}
	entra := map[string]string{"preauth": "entra"}
	tests := []errCase{
		{"pass X-Forwarded-For", appDoc(nil, "    pass_headers: [X-Forwarded-For]"), []wantErr{{9, ErrValue, "pass_headers: X-Forwarded-For: the mesh owns this header"}}},
		{"pass Forwarded", appDoc(nil, "    pass_headers: [forwarded]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass an X-Postern- header", appDoc(nil, "    pass_headers: [X-Postern-User]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass an X_Postern_ header", appDoc(nil, "    pass_headers: [X_Postern_Groups]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass the app's identity header", appDoc(entra, "    pass_headers: [X-Remote-User]", "    identity_headers: {user: X-Remote-User}"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass X-Request-Id", appDoc(nil, "    pass_headers: [x-request-id]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass HTTP2-Settings", appDoc(nil, "    pass_headers: [HTTP2-Settings]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass Upgrade", appDoc(nil, "    pass_headers: [Upgrade]"), []wantErr{{9, ErrValue, "the mesh owns"}}},
		{"pass a bad name", appDoc(nil, "    pass_headers: [\"X Bad\"]"), []wantErr{{9, ErrValue, "pass_headers"}}},
		{"pass twice", appDoc(nil, "    pass_headers: [A, A]"), []wantErr{{9, ErrDuplicate, "listed twice"}}},
		{"hsts not a duration", appDoc(nil, "    hsts_max_age: forever"), []wantErr{{9, ErrValue, `hsts_max_age "forever"`}}},
		{"hsts under a second", appDoc(nil, "    hsts_max_age: 10ms"), []wantErr{{9, ErrValue, "at least 1s"}}},
		{"hsts negative", appDoc(nil, "    hsts_max_age: -1h"), []wantErr{{9, ErrValue, "at least 1s"}}},
	}
	refuseAll(t, tests, nil)
}
