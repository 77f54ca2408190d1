package catalog

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/policy"
	"github.com/postern/postern/pkg/session"
)

// PolicyTest is one case of an app's policy tests (policy: tests:): this
// user, with these groups, roles and authentication contexts, on this
// path, is allowed or denied. "meshd catalog check" runs them, so a
// policy change is tested in CI before it reaches a mesh node.
type PolicyTest struct {
	// User is the principal id, "<tenant id>/<object id>" (or "<issuer
	// id>/<sub>" for an oidc app), as "whoami" on the auth host shows it.
	User string
	// Groups, Roles and ACRs are the user's group ids, app roles and
	// authentication contexts met.
	Groups, Roles, ACRs []string
	// Path is the request target, e.g. /admin/users?x=1.
	Path string
	// SourceIP is the client's address; the zero value means 192.0.2.1
	// (documentation range: outside any private source_cidrs).
	SourceIP netip.Addr
	// Allow is the expected decision (expect: allow or deny).
	Allow bool
	// Line is the line of the test in the catalogue.
	Line int
}

// PolicyTestResult is the outcome of one policy test.
type PolicyTestResult struct {
	// App is the app whose policy was tested.
	App string
	// Test is the case.
	Test PolicyTest
	// Decision is what the policy decided.
	Decision policy.Decision
	// Pass reports whether the decision was the expected one.
	Pass bool
}

// String describes the result as "line N: app X: user U on PATH: allowed
// (want deny): reason".
func (r PolicyTestResult) String() string {
	verdict := func(b bool) string {
		if b {
			return "allow"
		}
		return "deny"
	}
	s := fmt.Sprintf("line %d: app %q: %s on %s: %s", r.Test.Line, r.App, r.Test.User, r.Test.Path, verdict(r.Decision.Allow))
	if !r.Pass {
		s += " (want " + verdict(r.Test.Allow) + ")"
	}
	if r.Decision.Reason != "" {
		s += ": " + r.Decision.Reason
	}
	if r.Decision.Rule != "" {
		s += " [rule " + r.Decision.Rule + "]"
	}
	return s
}

// RunPolicyTests runs every app's policy tests, in catalogue order, as
// requests at now by users who signed in at now.
func (c *Catalog) RunPolicyTests(now time.Time) []PolicyTestResult {
	var out []PolicyTestResult
	for _, a := range c.apps {
		for _, t := range a.PolicyTests {
			d := a.Policy.Decide(t.identity(a, now), policy.Request{RawPath: t.Path, ClientIP: t.source(), Now: now})
			out = append(out, PolicyTestResult{App: a.ID, Test: t, Decision: d, Pass: d.Allow == t.Allow})
		}
	}
	return out
}

// identity is the signed-in user the test describes, as the edge would
// see them in app a: an Entra user's tenant is the first part of the id.
// The sign-in is fresh (max_session_age is met).
func (t PolicyTest) identity(a *App, now time.Time) *session.Identity {
	id := &session.Identity{Subject: t.User, Groups: t.Groups, Roles: t.Roles, ACRs: t.ACRs, AuthTime: now.Unix()}
	if a.PreAuth == PreAuthEntra {
		id.TenantID, id.ObjectID, _ = strings.Cut(t.User, "/")
	}
	return id
}

func (t PolicyTest) source() netip.Addr {
	if t.SourceIP.IsValid() {
		return t.SourceIP
	}
	return netip.MustParseAddr("192.0.2.1")
}

// policyTests decodes policy: tests:, a list of cases.
func (p *parser) policyTests(v *yaml.Node, label string) []PolicyTest {
	var out []PolicyTest
	p.list(v, "policy: tests", "policy test", func(i int, item *yaml.Node) {
		where := fmt.Sprintf("policy: test #%d", i+1)
		t := PolicyTest{Line: item.Line}
		p.mapping(item, label+": "+where, []field{
			{Key: "user", Required: true, Decode: func(v *yaml.Node) {
				if t.User, _ = p.str(v, label, where+": user"); t.User != "" && !strings.Contains(t.User, "/") {
					p.add(v.Line, ErrValue, label, "%s: user %q: want <tenant id>/<object id> (or <issuer id>/<sub>), as whoami shows it", where, t.User)
				}
			}},
			{Key: "groups", Decode: func(v *yaml.Node) { t.Groups = p.names(v, label, where+": groups") }},
			{Key: "roles", Decode: func(v *yaml.Node) { t.Roles = p.names(v, label, where+": roles") }},
			{Key: "acrs", Decode: func(v *yaml.Node) { t.ACRs = p.names(v, label, where+": acrs") }},
			{Key: "path", Required: true, Decode: func(v *yaml.Node) {
				if t.Path, _ = p.str(v, label, where+": path"); t.Path != "" && !strings.HasPrefix(t.Path, "/") {
					p.add(v.Line, ErrValue, label, "%s: path %q: want a path starting with /", where, t.Path)
				}
			}},
			{Key: "source_ip", Decode: func(v *yaml.Node) {
				s, ok := p.str(v, label, where+": source_ip")
				if !ok {
					return
				}
				a, err := netip.ParseAddr(s)
				if err != nil {
					p.add(v.Line, ErrValue, label, "%s: source_ip %q: not an IP address", where, s)
				}
				t.SourceIP = a.Unmap()
			}},
			{Key: "expect", Required: true, Decode: func(v *yaml.Node) {
				switch s, _ := p.str(v, label, where+": expect"); s {
				case "allow":
					t.Allow = true
				case "deny":
				default:
					p.add(v.Line, ErrValue, label, "%s: expect %q: want allow or deny", where, s)
				}
			}},
		})
		out = append(out, t)
	})
	return out
}
