package catalog

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// issuersTop is a catalogue top with the github issuer, appended after
// the apps so that the apps' line numbers stay those of appDoc.
func issuersTop(doc string) string {
	return doc + "home_tenant: " + testHome + "\nissuers:\n  - id: github\n    issuer: https://token.actions.githubusercontent.com\n"
}

func TestBearerKeys(t *testing.T) {
	entra := map[string]string{"preauth": "entra"}
	doc := issuersTop(appDoc(entra,
		"    bearer:",
		"      entra: {audiences: [api://records, 0a1b2c3d-0000-4000-8000-00000000a002], versions: [1, 2], tenants: ["+testPartner+"]}",
		"      workloads: [{issuer: github, audiences: [https://records.example.com]}]",
		"    policy:",
		"      allow:",
		"        clients: [11111111-2222-4333-8444-555555555555]",
		"        workloads: [{issuer: github, claims: {repository: octo/records, ref: refs/heads/main}}]",
		"      require_scopes: [Records.Read]",
	)) + "entra:\n  authority: https://login.example.com\n"
	c, err := Parse("catalog.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("a")
	want := &Bearer{
		Entra: &EntraBearer{Audiences: []string{"api://records", "0a1b2c3d-0000-4000-8000-00000000a002"}, V1: true, V2: true,
			Tenants: []string{testHome, testPartner}},
		Workloads: []WorkloadBearer{{Issuer: c.Issuers()[0], Audiences: []string{"https://records.example.com"}}},
	}
	if d := cmp.Diff(want, a.Bearer); d != "" {
		t.Errorf("bearer (-want +got):\n%s", d)
	}
	if e := c.Entra(); e.Authority != "https://login.example.com" || e.V1Issuer != DefaultEntraV1Issuer ||
		e.V2Issuer("t") != "https://login.example.com/t/v2.0" || e.V1IssuerFor("t") != "https://sts.windows.net/t/" {
		t.Errorf("entra: got %+v", e)
	}
	if is := c.Issuers(); len(is) != 1 || is[0].ID != "github" || is[0].URL != "https://token.actions.githubusercontent.com" {
		t.Errorf("issuers: got %+v", is)
	}
	if !a.Bearer.Accepts() || (*Bearer)(nil).Accepts() {
		t.Error("Accepts: wrong")
	}
}

func TestBearerKeyErrors(t *testing.T) {
	entra := map[string]string{"preauth": "entra"}
	tests := []errCase{
		{"bearer on passthrough", appDoc(nil, "    bearer: {forward_token: true}"), []wantErr{{9, ErrValue, "bearer: only for preauth entra or oidc"}}},
		{"entra bearer on oidc", appDoc(map[string]string{"preauth": "oidc"}, "    bearer:", "      entra: {audiences: [x], versions: [2]}"),
			[]wantErr{{10, ErrValue, "bearer: entra: only for preauth entra"}}},
		{"no versions", appDoc(entra, "    bearer:", "      entra: {audiences: [x]}"), []wantErr{{10, ErrMissing, `missing required key "versions"`}}},
		{"version 3", appDoc(entra, "    bearer:", "      entra: {audiences: [x], versions: [3]}"), []wantErr{{10, ErrValue, `versions: "3": want 1 or 2`}}},
		{"no audiences", appDoc(entra, "    bearer:", "      entra: {audiences: [], versions: [2]}"), []wantErr{{10, ErrValue, "audiences: name the API"}}},
		{"home tenant in tenants", appDoc(entra, "    bearer:", "      entra: {audiences: [x], versions: [2], tenants: ["+testHome+"]}"),
			[]wantErr{{10, ErrValue, "is the home tenant"}}},
		{"unknown issuer", appDoc(entra, "    bearer:", "      workloads: [{issuer: gitlab, audiences: [x]}]"),
			[]wantErr{{10, ErrValue, `issuer "gitlab": no such issuer (defined: github)`}}},
		{"workload without audiences", appDoc(entra, "    bearer:", "      workloads: [{issuer: github, audiences: []}]"),
			[]wantErr{{10, ErrValue, "name at least one audience"}}},
		{"issuer twice", appDoc(entra, "    bearer:", "      workloads:", "        - {issuer: github, audiences: [x]}", "        - {issuer: github, audiences: [y]}"),
			[]wantErr{{12, ErrDuplicate, "issuer github listed twice"}}},
		{"clients without entra tokens", appDoc(entra, "    policy:", "      allow: {clients: [c]}"), []wantErr{{10, ErrValue, "clients: the app accepts no Entra access tokens"}}},
		{"scopes without entra tokens", appDoc(entra, "    policy:", "      require_scopes: [S]"), []wantErr{{10, ErrValue, "require_scopes: the app accepts no Entra access tokens"}}},
		{"workload condition of an untrusted issuer", appDoc(entra, "    policy:", "      allow: {workloads: [{issuer: github}]}"),
			[]wantErr{{10, ErrValue, `workloads: issuer "github": the app accepts no tokens of it`}}},
		{"claim value not a string", appDoc(entra, "    bearer:", "      workloads: [{issuer: github, audiences: [x]}]", "    policy:",
			"      allow: {workloads: [{issuer: github, claims: {ref: [a]}}]}"), []wantErr{{12, ErrType, "claims: ref: got a list"}}},
		{"forward_token not a bool", appDoc(entra, "    bearer: {forward_token: yes please}"), []wantErr{{9, ErrType, "forward_token: got a string"}}},
	}
	refuseAll(t, tests, issuersTop)
	top := []errCase{
		{"issuer over http", appDoc(nil) + "issuers:\n  - id: x\n    issuer: http://evil.example.com\n", []wantErr{{11, ErrValue, `issuer "http://evil.example.com": must use https`}}},
		{"issuer twice", appDoc(nil) + "issuers:\n  - {id: x, issuer: https://a.example.com}\n  - {id: y, issuer: https://a.example.com}\n",
			[]wantErr{{11, ErrDuplicate, "already listed at line 10"}}},
		{"issuer id twice", appDoc(nil) + "issuers:\n  - {id: x, issuer: https://a.example.com}\n  - {id: x, issuer: https://b.example.com}\n",
			[]wantErr{{11, ErrDuplicate, "id already used at line 10"}}},
		{"authority with a slash", appDoc(nil) + "entra:\n  authority: https://login.example.com/\n", []wantErr{{10, ErrValue, "must not end with /"}}},
		{"jwks_file relative", appDoc(nil) + "issuers:\n  - id: x\n    issuer: https://a.example.com\n    jwks_file: keys.json\n",
			[]wantErr{{12, ErrValue, `jwks_file "keys.json": want an absolute path`}}},
		{"jwks_file and jwks_url", appDoc(nil) + "issuers:\n  - id: x\n    issuer: https://a.example.com\n    jwks_url: https://a.example.com/k\n    jwks_file: /k.json\n",
			[]wantErr{{13, ErrValue, "give jwks_url or jwks_file, not both"}}},
		{"entra unknown key", appDoc(nil) + "entra:\n  tenant: x\n", []wantErr{{10, ErrUnknownKey, `unknown key "tenant"`}}},
	}
	refuseAll(t, top, nil)
}

func TestTCPApps(t *testing.T) {
	tcp := map[string]string{"preauth": "entra", "internal_url": omit}
	c, err := Parse("catalog.yaml", []byte(withHome(appDoc(tcp, "    kind: tcp", "    target: db.corp:5432"))))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("a")
	if a.Kind != KindTCP || a.Target != "db.corp:5432" || a.InternalURL != nil || a.HSTS != "" {
		t.Errorf("got %+v, want a TCP app to db.corp:5432", a)
	}
	tests := []errCase{
		{"no target", appDoc(tcp, "    kind: tcp"), []wantErr{{4, ErrMissing, `missing required key "target"`}}},
		{"internal_url", appDoc(map[string]string{"preauth": "entra"}, "    kind: tcp", "    target: h:22"), []wantErr{{6, ErrValue, "internal_url: not for kind tcp apps"}}},
		{"passthrough", appDoc(map[string]string{"internal_url": omit}, "    kind: tcp", "    target: h:22"), []wantErr{{8, ErrValue, "a TCP app needs entra or oidc"}}},
		{"no port", appDoc(tcp, "    kind: tcp", "    target: db.corp"), []wantErr{{10, ErrValue, `target "db.corp": want host:port`}}},
		{"port 0", appDoc(tcp, "    kind: tcp", "    target: db.corp:0"), []wantErr{{10, ErrValue, "port out of range"}}},
		{"url", appDoc(tcp, "    kind: tcp", "    target: tcp://db.corp:22"), []wantErr{{10, ErrValue, "want host:port"}}},
		{"bad host", appDoc(tcp, "    kind: tcp", "    target: db/x:22"), []wantErr{{10, ErrValue, "not a host name or IP address"}}},
		{"paths", appDoc(tcp, "    kind: tcp", "    target: h:22", "    policy:", "      paths: [{prefix: /a}]"), []wantErr{{12, ErrValue, "a TCP app has no paths"}}},
		{"host_header", appDoc(tcp, "    kind: tcp", "    target: h:22", "    host_header: external"), []wantErr{{11, ErrValue, "host_header: not for kind tcp"}}},
		{"target on a web app", appDoc(nil, "    target: h:22"), []wantErr{{9, ErrValue, "target: only for kind tcp apps"}}},
		{"unknown kind", appDoc(nil, "    kind: udp"), []wantErr{{9, ErrValue, `kind "udp": must be web or tcp`}}},
	}
	refuseAll(t, tests, withHome)
	ipv6, err := Parse("catalog.yaml", []byte(withHome(appDoc(tcp, "    kind: tcp", "    target: \"[fd00::1]:3389\""))))
	if err != nil || !strings.Contains(ipv6.Apps()[0].Target, "fd00::1") {
		t.Errorf("IPv6 target: %v", err)
	}
}
