package catalog

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestExamplePolicyTestsPass(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("example.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	results := c.RunPolicyTests(time.Now())
	if len(results) != 4 {
		t.Fatalf("got %d results, want the example's 4", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
}

const policyTestCatalog = `home_tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47
connector_groups: [{id: hq}]
apps:
  - id: app
    host: app.example.com
    internal_url: http://10.0.0.1
    connector_group: hq
    preauth: entra
    policy:
      allow: {groups: [g-support]}
      paths:
        - prefix: /admin
          allow: {roles: [App.Admin]}
      tests:
`

func TestPolicyTests(t *testing.T) {
	const user = "72f988bf-86f1-41af-91ab-2d7cd011db47/u1"
	const partner = "b7d41e90-2c3a-4f6b-8e57-91a0c4d2e3f6/u2"
	for _, tc := range []struct {
		name, tests string
		pass        []bool
	}{
		{"allow and deny as expected", `
        - {user: ` + user + `, groups: [g-support], path: /x, expect: allow}
        - {user: ` + user + `, groups: [g-support], path: /admin, expect: deny}
        - {user: ` + user + `, groups: [g-support], roles: [App.Admin], path: /admin/x, expect: allow}`, []bool{true, true, true}},
		{"a wrong expectation fails", `
        - {user: ` + user + `, path: /x, expect: allow}`, []bool{false}},
		{"another tenant's groups do not count", `
        - {user: ` + partner + `, groups: [g-support], path: /x, expect: deny}
        - {user: ` + partner + `, groups: [g-support], path: /x, expect: allow}`, []bool{true, false}},
		{"a path the policy refuses is a deny", `
        - {user: ` + user + `, groups: [g-support], path: "/a/../admin", expect: deny}`, []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(policyTestCatalog+strings.TrimPrefix(tc.tests, "\n")+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			results := c.RunPolicyTests(time.Now())
			if len(results) != len(tc.pass) {
				t.Fatalf("got %d results, want %d", len(results), len(tc.pass))
			}
			for i, r := range results {
				if r.Pass != tc.pass[i] {
					t.Errorf("test %d: pass %v, want %v: %s", i+1, r.Pass, tc.pass[i], r)
				}
				if !r.Pass && !strings.Contains(r.String(), "(want ") {
					t.Errorf("a failure's text %q does not say what was wanted", r)
				}
			}
		})
	}
}

func TestPolicyTestsStrict(t *testing.T) {
	for _, tc := range []struct {
		name, tests, want string
		class             error
	}{
		{"e-mail user", `- {user: alice@example.com, path: /, expect: allow}`, `:15: app "app": policy: test #1: user "alice@example.com": want <tenant id>/<object id>`, ErrValue},
		{"bad expect", `- {user: t/u, path: /, expect: maybe}`, `policy: test #1: expect "maybe": want allow or deny`, ErrValue},
		{"missing path", `- {user: t/u, expect: deny}`, `missing required key "path"`, ErrMissing},
		{"relative path", `- {user: t/u, path: admin, expect: deny}`, `path "admin": want a path starting with /`, ErrValue},
		{"bad source", `- {user: t/u, path: /, source_ip: 10.0.0.300, expect: deny}`, `source_ip "10.0.0.300": not an IP address`, ErrValue},
		{"unknown key", `- {user: t/u, path: /, expect: deny, method: GET}`, `unknown key "method"`, ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(policyTestCatalog+"        "+tc.tests+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.class) {
				t.Fatalf("got %v, want %q (%v)", err, tc.want, tc.class)
			}
		})
	}
	// Policy tests belong to pre-authenticated apps only.
	passthrough := strings.Replace(policyTestCatalog, "preauth: entra", "preauth: passthrough", 1) + "        - {user: t/u, path: /, expect: deny}\n"
	if _, err := Parse("c.yaml", []byte(passthrough)); err == nil || !strings.Contains(err.Error(), "policy: only for preauth") {
		t.Fatalf("got %v, want policy refused for passthrough", err)
	}
}
