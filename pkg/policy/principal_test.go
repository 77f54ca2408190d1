package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

const home = "home-tid"

func mustPolicy(tb testing.TB, cfg Config) *Policy {
	tb.Helper()
	cfg.HomeTenant = home
	p, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestPrincipalTypes: an empty allow list admits users only; applications
// and workloads pass only when named, by client, role, subject or
// conditions; delegated tokens need the scopes; browser users do not.
func TestPrincipalTypes(t *testing.T) {
	open := mustPolicy(t, Config{})
	named := mustPolicy(t, Config{
		Allow: Allow{Roles: []string{"Records.Read.All"}, Clients: []string{"daemon-1"},
			Workloads: []Workload{{Issuer: "github", Claims: map[string]string{"repository": "octo/records", "ref": "refs/heads/main"}}}},
		RequireScopes: []string{"Records.Read"},
		Paths:         []PathRule{{Prefix: "/write", RequireScopes: []string{"Records.Write"}}},
	})
	user := &session.Identity{Subject: home + "/u", TenantID: home}
	delegated := &session.Identity{Subject: home + "/u", TenantID: home, Type: session.PrincipalUser, ClientID: "native",
		Roles: []string{"Records.Read.All"}, Scopes: []string{"Records.Read"}}
	noScope := &session.Identity{Subject: home + "/u", TenantID: home, Type: session.PrincipalUser, ClientID: "native",
		Roles: []string{"Records.Read.All"}}
	app := &session.Identity{Subject: home + "/sp", TenantID: home, Type: session.PrincipalApp, ClientID: "daemon-1"}
	appRole := &session.Identity{Subject: home + "/sp2", TenantID: home, Type: session.PrincipalApp, ClientID: "daemon-2", Roles: []string{"Records.Read.All"}}
	bareApp := &session.Identity{Subject: home + "/sp3", TenantID: home, Type: session.PrincipalApp, ClientID: "daemon-3"}
	partnerApp := &session.Identity{Subject: "partner/sp", TenantID: "partner", Type: session.PrincipalApp, ClientID: "daemon-1"}
	wl := func(claims map[string]string) *session.Identity {
		return &session.Identity{Subject: "wif:github/x", Type: session.PrincipalWorkload, Issuer: "github", Claims: claims}
	}
	mainBranch := wl(map[string]string{"repository": "octo/records", "ref": "refs/heads/main", "sub": "x"})
	otherBranch := wl(map[string]string{"repository": "octo/records", "ref": "refs/heads/x"})
	missingClaim := wl(map[string]string{"repository": "octo/records"})
	otherIssuer := &session.Identity{Subject: "wif:gitlab/x", Type: session.PrincipalWorkload, Issuer: "gitlab",
		Claims: map[string]string{"repository": "octo/records", "ref": "refs/heads/main"}}
	tests := []struct {
		name   string
		p      *Policy
		id     *session.Identity
		path   string
		allow  bool
		reason string
	}{
		{"empty allow admits a browser user", open, user, "/", true, ""},
		{"empty allow admits a delegated user", open, delegated, "/", true, ""},
		{"empty allow refuses an application", open, bareApp, "/", false, "applications and workloads are admitted only when the policy names them"},
		{"empty allow refuses a workload", open, mainBranch, "/", false, "applications and workloads are admitted only when the policy names them"},
		{"application by client id", named, app, "/", true, ""},
		{"application by app role", named, appRole, "/", true, ""},
		{"application of the tenant, unnamed", named, bareApp, "/", false, "client application daemon-1"},
		{"named client from another tenant", named, partnerApp, "/", false, ""},
		{"delegated with the scope", named, delegated, "/", true, ""},
		{"delegated without the scope", named, noScope, "/", false, "delegated permission Records.Read"},
		{"delegated, path scope missing", named, delegated, "/write/x", false, "delegated permission Records.Write for /write"},
		{"applications need no scopes", named, app, "/write/x", true, ""},
		{"workload meeting the conditions", named, mainBranch, "/", true, ""},
		{"workload of another branch", named, otherBranch, "/", false, "a workload of issuer github with ref=refs/heads/main, repository=octo/records"},
		{"workload missing a claim", named, missingClaim, "/", false, ""},
		{"same claims, another issuer", named, otherIssuer, "/", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Decide(tc.id, Request{RawPath: tc.path})
			if d.Allow != tc.allow || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("got %+v, want allow %v with %q", d, tc.allow, tc.reason)
			}
		})
	}
	if d := named.Decide(noScope, Request{RawPath: "/"}); len(d.MissingScopes) != 1 || d.MissingScopes[0] != "Records.Read" {
		t.Errorf("MissingScopes: got %v, want [Records.Read]", d.MissingScopes)
	}
}

// TestMaxAgeByPrincipal: a session age applies to users; a delegated
// token without auth_time fails it; applications and workloads have no
// session.
func TestMaxAgeByPrincipal(t *testing.T) {
	p := mustPolicy(t, Config{MaxSessionAge: time.Hour, Allow: Allow{Users: []string{home + "/u"}, Clients: []string{"d"}}})
	now := time.Now()
	fresh := &session.Identity{Subject: home + "/u", TenantID: home, AuthTime: now.Unix()}
	delegated := &session.Identity{Subject: home + "/u", TenantID: home, Type: session.PrincipalUser, ClientID: "native"}
	app := &session.Identity{Subject: home + "/sp", TenantID: home, Type: session.PrincipalApp, ClientID: "d"}
	for _, tc := range []struct {
		id    *session.Identity
		allow bool
	}{{fresh, true}, {delegated, false}, {app, true}} {
		if d := p.Decide(tc.id, Request{RawPath: "/", Now: now}); d.Allow != tc.allow {
			t.Errorf("%+v: got %+v, want allow %v", tc.id, d, tc.allow)
		}
	}
}

func TestWorkloadNeedsIssuer(t *testing.T) {
	if _, err := New(Config{Allow: Allow{Workloads: []Workload{{Claims: map[string]string{"a": "b"}}}}}); err == nil {
		t.Error("a workload condition without issuer: got a policy, want an error")
	}
}
