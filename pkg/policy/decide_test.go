package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func smartMoney(tb testing.TB, ci bool) *Policy {
	tb.Helper()
	p, err := New(Config{
		Allow:         Allow{Users: []string{"t/vip"}, Groups: []string{"g-staff"}, Roles: []string{"SmartMoney.User"}},
		RequireACRs:   []string{"c1"},
		SourceCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		MaxSessionAge: 24 * time.Hour,
		Paths: []PathRule{
			{Prefix: "/admin", Allow: Allow{Roles: []string{"SmartMoney.Admin"}}, RequireACRs: []string{"c2"}},
			{Prefix: "/admin/reports/", Allow: Allow{Groups: []string{"g-auditors"}}},
			{Prefix: "/public"},
		},
		CaseInsensitive: ci,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p
}

func TestDecide(t *testing.T) {
	user := &session.Identity{Subject: "t/u1", Roles: []string{"SmartMoney.User"}, ACRs: []string{"c1"}, AuthTime: t0.Add(-time.Hour).Unix()}
	admin := &session.Identity{Subject: "t/a1", Roles: []string{"SmartMoney.User", "SmartMoney.Admin"}, ACRs: []string{"c1", "c2"}, AuthTime: t0.Add(-time.Hour).Unix()}
	adminNoC2 := &session.Identity{Subject: "t/a2", Roles: []string{"SmartMoney.User", "SmartMoney.Admin"}, ACRs: []string{"c1"}, AuthTime: t0.Add(-time.Hour).Unix()}
	auditor := &session.Identity{Subject: "t/au", Groups: []string{"g-staff", "g-auditors"}, ACRs: []string{"c1"}, AuthTime: t0.Add(-time.Hour).Unix()}
	vip := &session.Identity{Subject: "t/vip", ACRs: []string{"c1"}, AuthTime: t0.Add(-time.Hour).Unix()}
	stranger := &session.Identity{Subject: "t/x", Groups: []string{"g-other"}, ACRs: []string{"c1"}, AuthTime: t0.Add(-time.Hour).Unix()}
	noACR := &session.Identity{Subject: "t/u2", Roles: []string{"SmartMoney.User"}, AuthTime: t0.Add(-time.Hour).Unix()}
	old := &session.Identity{Subject: "t/u3", Roles: []string{"SmartMoney.User"}, ACRs: []string{"c1"}, AuthTime: t0.Add(-25 * time.Hour).Unix()}
	inside := netip.MustParseAddr("10.1.2.3")

	tests := []struct {
		name       string
		ci         bool
		id         *session.Identity
		path       string
		ip         netip.Addr
		allow      bool
		rule       string
		reasonHas  string
		missingACR string
	}{
		{"user on the app", false, user, "/x", inside, true, "app", "", ""},
		{"user by subject", false, vip, "/x", inside, true, "app", "", ""},
		{"user by group", false, auditor, "/x", inside, true, "app", "", ""},
		{"stranger", false, stranger, "/x", inside, false, "app", "requires the app role SmartMoney.User or membership of the group g-staff or the user t/vip for this app", ""},
		{"not signed in", false, nil, "/x", inside, false, "app", "signed-in user", ""},
		{"missing app acr", false, noACR, "/x", inside, false, "app", "authentication context c1 for this app", "c1"},
		{"session too old", false, old, "/x", inside, false, "app", "within the last 24h0m0s", ""},
		{"outside the CIDRs", false, user, "/x", netip.MustParseAddr("192.0.2.1"), false, "app", "requires a connection from 10.0.0.0/8, 2001:db8::/32; this one comes from 192.0.2.1", ""},
		{"IPv4-mapped inside", false, user, "/x", netip.MustParseAddr("::ffff:10.1.2.3"), true, "app", "", ""},
		{"IPv6 inside", false, user, "/x", netip.MustParseAddr("2001:db8::1"), true, "app", "", ""},
		{"no client address", false, user, "/x", netip.Addr{}, false, "app", "an unknown address", ""},
		{"admin path denied to user", false, user, "/admin", inside, false, "path /admin", "requires the app role SmartMoney.Admin for /admin", ""},
		{"admin path allowed to admin", false, admin, "/admin/x", inside, true, "path /admin", "", ""},
		{"admin without c2", false, adminNoC2, "/admin", inside, false, "path /admin", "authentication context c2 for /admin", "c2"},
		{"longest prefix wins", false, auditor, "/admin/reports/q1", inside, true, "path /admin/reports", "", ""},
		{"longest prefix denies admin", false, admin, "/admin/reports", inside, false, "path /admin/reports", "membership of the group g-auditors for /admin/reports", ""},
		{"segment boundary", false, user, "/administrator", inside, true, "app", "", ""},
		{"public path", false, user, "/public/x", inside, true, "path /public", "", ""},
		// Spellings of /admin.
		{"//admin", false, user, "//admin", inside, false, "path /admin", "", ""},
		{"/./admin refused", false, user, "/./admin", inside, false, "app", "not acceptable", ""},
		{"/%61dmin", false, user, "/%61dmin", inside, false, "path /admin", "", ""},
		{"/public/%2e%2e/admin refused", false, admin, "/public/%2e%2e/admin", inside, false, "app", "not acceptable", ""},
		{"/admin;x", false, user, "/admin;x", inside, false, "path /admin", "", ""},
		{"/Admin case-insensitive", true, user, "/Admin", inside, false, "path /admin", "", ""},
		{"/ADMIN/%2E/x refused", true, admin, "/ADMIN/%2E/x", inside, false, "app", "not acceptable", ""},
		{"/admin. in IIS mode refused", true, admin, "/admin.", inside, false, "app", "trailing dot", ""},
		{"/admin%3Bx", false, user, "/admin%3Bx", inside, false, "path /admin", "", ""},
		// A path with ";" is allowed only if every reading is: servlet
		// containers drop the parameter (/admin/reports/q1), others keep
		// it (/admin/reports;x/q1 is under /admin, not /admin/reports).
		{"auditor, ; splits the readings", false, auditor, "/admin/reports;x/q1", inside, false, "path /admin", "SmartMoney.Admin", ""},
		{"auditor, %3B splits the readings", false, auditor, "/admin/reports%3bx/q1", inside, false, "path /admin", "SmartMoney.Admin", ""},
		{"auditor, // splits the readings", false, auditor, "/admin//reports/q1", inside, false, "path /admin", "SmartMoney.Admin", ""},
		{"auditor without tricks", false, auditor, "/admin/reports/q1", inside, true, "path /admin/reports", "", ""},
		{"/admin%2f refused", false, user, "/admin%2f", inside, false, "app", "not acceptable", ""},
		{"/admin# refused", false, user, "/admin#", inside, false, "app", "not acceptable", ""},
		{"full URL refused", false, admin, "http://smartmoney.localhost/admin", inside, false, "app", "not acceptable", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := smartMoney(t, tt.ci)
			d := p.Decide(tt.id, Request{RawPath: tt.path, ClientIP: tt.ip, Now: t0})
			if d.Allow != tt.allow || d.Rule != tt.rule {
				t.Fatalf("got allow %v rule %q (%s), want allow %v rule %q", d.Allow, d.Rule, d.Reason, tt.allow, tt.rule)
			}
			if !strings.Contains(d.Reason, tt.reasonHas) {
				t.Errorf("got reason %q, want it to contain %q", d.Reason, tt.reasonHas)
			}
			if !tt.allow && d.Reason == "" {
				t.Error("got an empty reason for a denial")
			}
			if d.BadPath != strings.Contains(d.Reason, "not acceptable") {
				t.Errorf("got BadPath %v for %q", d.BadPath, d.Reason)
			}
			if got := strings.Join(d.MissingACRs, ","); got != tt.missingACR {
				t.Errorf("got missing acrs %q, want %q", got, tt.missingACR)
			}
		})
	}
}

func TestDecideOpenPolicy(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(&session.Identity{Subject: "t/anyone"}, Request{Path: "/x"}); !d.Allow {
		t.Errorf("got %+v, want any signed-in user allowed", d)
	}
	if d := p.Decide(&session.Identity{}, Request{Path: "/x"}); d.Allow {
		t.Errorf("got %+v, want no subject denied", d)
	}
	var nilPolicy *Policy
	if d := nilPolicy.Decide(&session.Identity{Subject: "s"}, Request{Path: "/"}); d.Allow {
		t.Errorf("nil policy: got %+v, want deny", d)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"relative prefix", Config{Paths: []PathRule{{Prefix: "admin"}}}},
		{"prefix with query", Config{Paths: []PathRule{{Prefix: "/admin?x"}}}},
		{"prefix with encoded slash", Config{Paths: []PathRule{{Prefix: "/a%2fb"}}}},
		{"repeated prefix", Config{Paths: []PathRule{{Prefix: "/admin"}, {Prefix: "/admin/"}}}},
		{"repeated prefix by case", Config{CaseInsensitive: true, Paths: []PathRule{{Prefix: "/admin"}, {Prefix: "/Admin"}}}},
		{"invalid CIDR", Config{SourceCIDRs: []netip.Prefix{{}}}},
		{"negative age", Config{MaxSessionAge: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrBadConfig) {
				t.Errorf("got %v, want %v", err, ErrBadConfig)
			}
		})
	}
}

func TestNamedGroupsAndRoles(t *testing.T) {
	p := smartMoney(t, false)
	if got := strings.Join(p.Groups(), ","); got != "g-auditors,g-staff" {
		t.Errorf("got groups %q, want g-auditors,g-staff", got)
	}
	if got := strings.Join(p.Roles(), ","); got != "SmartMoney.Admin,SmartMoney.User" {
		t.Errorf("got roles %q, want SmartMoney.Admin,SmartMoney.User", got)
	}
}

// TestDecideTenants checks that groups and roles count only from the home
// tenant and the tenants a rule accepts: a partner tenant's admins assign
// their own roles and groups.
func TestDecideTenants(t *testing.T) {
	const home, partner, other = "home-tid", "partner-tid", "other-tid"
	p, err := New(Config{
		HomeTenant: home,
		Allow:      Allow{Users: []string{other + "/named"}, Groups: []string{"g-staff"}, Roles: []string{"App.User"}, Tenants: []string{partner}},
		Paths:      []PathRule{{Prefix: "/admin", Allow: Allow{Roles: []string{"App.Admin"}, Groups: []string{"g-admins"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := func(tid, oid string, groups, roles []string) *session.Identity {
		return &session.Identity{Subject: tid + "/" + oid, TenantID: tid, Groups: groups, Roles: roles}
	}
	admin := []string{"App.User", "App.Admin"}
	tests := []struct {
		name      string
		id        *session.Identity
		path      string
		allow     bool
		reasonHas string
	}{
		{"home user", id(home, "u", nil, []string{"App.User"}), "/x", true, ""},
		{"home admin on /admin", id(home, "a", nil, admin), "/admin", true, ""},
		{"home group admin on /admin", id(home, "a", []string{"g-staff", "g-admins"}, nil), "/admin/x", true, ""},
		{"partner user (accepted by the app rule)", id(partner, "u", nil, []string{"App.User"}), "/x", true, ""},
		{"partner group member", id(partner, "u", []string{"g-staff"}, nil), "/x", true, ""},
		{"partner admin on /admin (home only)", id(partner, "a", nil, admin), "/admin", false, "count only from the tenants home-tid, and you signed in from tenant partner-tid"},
		{"partner group admin on /admin", id(partner, "a", []string{"g-staff", "g-admins"}, nil), "/admin", false, "count only from"},
		{"other tenant's user role", id(other, "u", nil, []string{"App.User"}), "/x", false, "home-tid, partner-tid"},
		{"other tenant's group", id(other, "u", []string{"g-staff"}, nil), "/x", false, "count only from"},
		{"other tenant's user named by subject", id(other, "named", nil, nil), "/x", true, ""},
		{"no tenant at all", &session.Identity{Subject: "iss/u", Roles: []string{"App.User"}}, "/x", false, "from no tenant"},
		{"tenant spelled in another case", id("HOME-TID", "u", nil, []string{"App.User"}), "/x", false, "count only from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.id, Request{Path: tt.path})
			if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reasonHas) {
				t.Fatalf("got allow %v (%s), want %v with %q", d.Allow, d.Reason, tt.allow, tt.reasonHas)
			}
		})
	}
	// Without a home tenant (a provider other than Entra), identities
	// without a tenant count; one with a tenant does not.
	o, err := New(Config{Allow: Allow{Roles: []string{"App.User"}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := o.Decide(&session.Identity{Subject: "iss/u", Roles: []string{"App.User"}}, Request{Path: "/"}); !d.Allow {
		t.Errorf("no home tenant, no tenant: got %+v, want allow", d)
	}
	if d := o.Decide(id(partner, "u", nil, []string{"App.User"}), Request{Path: "/"}); d.Allow {
		t.Errorf("no home tenant, identity with a tenant: got %+v, want deny", d)
	}
}
