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
	id := &session.Identity{Subject: "t/o", Roles: []string{"SmartMoney.User"}, ACRs: []string{"c1"}, AuthTime: time.Now().Unix()}
	d := a.Policy.Decide(id, policy.Request{RawPath: "/ADMIN/x", ClientIP: netip.MustParseAddr("10.0.0.1")})
	if d.Allow || !strings.Contains(d.Reason, "SmartMoney.Admin for /admin") {
		t.Errorf("got %+v, want denied by the /admin rule", d)
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
	tests := []struct {
		name string
		doc  string
		want []wantErr
	}{
		{"policy on passthrough", appDoc(nil, "    policy: {}"), []wantErr{{9, ErrValue, `app "a": policy: only for preauth entra or oidc, not passthrough`}}},
		{"lifetime on passthrough", appDoc(nil, "    session_lifetime: 1h"), []wantErr{{9, ErrValue, "session_lifetime: only for preauth"}}},
		{"bad lifetime", appDoc(entra, "    session_lifetime: forever"), []wantErr{{9, ErrValue, `session_lifetime "forever": not a duration`}}},
		{"zero max age", appDoc(entra, "    max_session_age: 0s"), []wantErr{{9, ErrValue, "max_session_age \"0s\": must be greater than zero"}}},
		{"path case", appDoc(entra, "    path_case: upper"), []wantErr{{9, ErrValue, `path_case "upper": must be sensitive or insensitive`}}},
		{"policy unknown key", appDoc(entra, "    policy:", "      deny: {}"), []wantErr{{10, ErrUnknownKey, `unknown key "deny" (known keys: allow, require_acrs, source_cidrs, paths)`}}},
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("catalog.yaml", []byte(tt.doc))
			if c != nil {
				t.Errorf("got a catalogue, want nil")
			}
			checkErrors(t, err, tt.want)
		})
	}
}
