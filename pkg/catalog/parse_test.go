package catalog

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// header is lines 1-3 of every test document; the first app starts at line 4.
const header = `connector_groups:
  - id: hq
apps:
`

const omit = "\x00omit"

// appDoc returns header plus one app at lines 4-8 (id, host, internal_url,
// connector_group, preauth, in that order) and extra lines from line 9. set
// overrides a key's raw YAML value; omit replaces its line by a comment so
// that later lines keep their numbers.
func appDoc(set map[string]string, extra ...string) string {
	keys := []string{"id", "host", "internal_url", "connector_group", "preauth"}
	vals := map[string]string{"id": "a", "host": "a.example.com", "internal_url": "http://10.0.0.1:8080",
		"connector_group": "hq", "preauth": "passthrough"}
	var b strings.Builder
	b.WriteString(header)
	first := true
	for _, k := range keys {
		v, ok := set[k]
		if !ok {
			v = vals[k]
		}
		if v == omit {
			b.WriteString("    # no " + k + "\n")
			continue
		}
		if first {
			b.WriteString("  - ")
			first = false
		} else {
			b.WriteString("    ")
		}
		b.WriteString(k + ": " + v + "\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// wantErr is one expected problem: its line, class and a part of its message.
type wantErr struct {
	line  int
	class error
	msg   string
}

// lineErrors returns the *Error values joined in err, failing on anything else.
func lineErrors(tb testing.TB, err error) []*Error {
	tb.Helper()
	if err == nil {
		tb.Fatal("got nil error, want an error")
	}
	if !errors.Is(err, ErrInvalid) {
		tb.Fatalf("got %v, want an error matching ErrInvalid", err)
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]*Error, 0, len(errs))
	for _, e := range errs {
		var le *Error
		if !errors.As(e, &le) {
			tb.Fatalf("got %T %v, want *Error", e, e)
		}
		out = append(out, le)
	}
	return out
}

func checkErrors(tb testing.TB, err error, want []wantErr) {
	tb.Helper()
	got := lineErrors(tb, err)
	if len(got) != len(want) {
		tb.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		g := got[i]
		if g.Line != w.line {
			tb.Errorf("error %d: got line %d, want %d (%v)", i, g.Line, w.line, g)
		}
		if !errors.Is(g, w.class) {
			tb.Errorf("error %d: got class %v, want %v (%v)", i, g.Class, w.class, g)
		}
		if !strings.Contains(g.Error(), w.msg) {
			tb.Errorf("error %d: got %q, want it to contain %q", i, g.Error(), w.msg)
		}
		if g.File != "catalog.yaml" {
			tb.Errorf("error %d: got file %q, want catalog.yaml", i, g.File)
		}
	}
}

func TestParseValid(t *testing.T) {
	doc := `# published apps
connector_groups:
  - id: hq
    region: eu-west
  - id: "2024"
apps:
  - id: smartmoney
    host: SmartMoney.Apps.Example.COM.
    internal_url: HTTPS://10.1.2.3:8443/base/
    connector_group: hq
    preauth: passthrough
    backend_timeout: 1h30m
    host_header: external
    tls_skip_verify: true
    trust_trace_headers: true
  - id: wiki
    display_name: Team Wiki (Ünïcode ok)
    host: localhost
    internal_url: http://[::1]:8080
    connector_group: "2024"
    preauth: passthrough
    hsts_max_age: 0
`
	c, err := Parse("catalog.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []*App{{
		ID: "smartmoney", Host: "smartmoney.apps.example.com", Kind: KindWeb,
		InternalURL:    &url.URL{Scheme: "https", Host: "10.1.2.3:8443", Path: "/base/"},
		ConnectorGroup: "hq", PreAuth: PreAuthPassthrough, BackendTimeout: 90 * time.Minute,
		HostHeader: HostHeaderExternal, TLSSkipVerify: true, TrustTraceHeaders: true, HSTS: DefaultHSTS, Line: 7,
	}, {
		ID: "wiki", DisplayName: "Team Wiki (Ünïcode ok)", Host: "localhost", Kind: KindWeb, InternalURL: &url.URL{Scheme: "http", Host: "[::1]:8080"},
		ConnectorGroup: "2024", PreAuth: PreAuthPassthrough, BackendTimeout: DefaultBackendTimeout,
		HostHeader: HostHeaderInternal, Line: 16,
	}}
	if d := cmp.Diff(want, c.Apps()); d != "" {
		t.Errorf("apps (-want +got):\n%s", d)
	}
	wantGroups := []*ConnectorGroup{{ID: "hq", Region: "eu-west", Line: 3}, {ID: "2024", Line: 5}}
	if d := cmp.Diff(wantGroups, c.Groups()); d != "" {
		t.Errorf("groups (-want +got):\n%s", d)
	}
	if a, ok := c.App("wiki"); !ok || a.Host != "localhost" {
		t.Errorf("got App(wiki) = %v, %v, want the wiki app", a, ok)
	}
	if g, ok := c.Group("hq"); !ok || g.Region != "eu-west" {
		t.Errorf("got Group(hq) = %v, %v, want region eu-west", g, ok)
	}
	if _, ok := c.App("nope"); ok {
		t.Error("got App(nope) found, want not found")
	}
	if _, ok := c.Group("nope"); ok {
		t.Error("got Group(nope) found, want not found")
	}
	if got, want := c.Hash(), hashOf([]byte(doc)); got != want || len(got) != 64 {
		t.Errorf("got hash %q, want %q", got, want)
	}
}

func TestParseEmptyLists(t *testing.T) {
	for _, doc := range []string{"connector_groups: []\napps: []\n", "connector_groups:\napps:\n"} {
		c, err := Parse("catalog.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if len(c.Apps()) != 0 || len(c.Groups()) != 0 {
			t.Errorf("%q: got %d apps, %d groups, want none", doc, len(c.Apps()), len(c.Groups()))
		}
	}
}

func TestExampleParses(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Apps()); got != 3 {
		t.Fatalf("got %d apps, want 3", got)
	}
	if b, _ := c.App("bastion"); b.Kind != KindTCP || b.Target != "10.1.2.30:22" {
		t.Errorf("got bastion %+v, want a TCP app", b)
	}
	if is := c.Issuers(); len(is) != 3 || is[2].JWKSFile != "/etc/postern/k8s-private-jwks.json" || c.Entra().Authority != DefaultEntraAuthority {
		t.Errorf("got issuers %v, entra %+v", c.Issuers(), c.Entra())
	}
	a, ok := c.AppByHost("smartmoney.apps.example.com")
	if !ok {
		t.Fatal("got smartmoney not found, want found")
	}
	if got, want := a.InternalURL.String(), "http://10.1.2.3:8080/base"; got != want {
		t.Errorf("got internal_url %v, want %v", got, want)
	}
	if a.BackendTimeout != DefaultBackendTimeout || a.HostHeader != HostHeaderInternal || a.TLSSkipVerify {
		t.Errorf("got %+v, want the documented defaults", a)
	}
	if !a.Bearer.Accepts() || !a.Bearer.Entra.V2 || a.Bearer.Entra.V1 || a.Bearer.ForwardToken {
		t.Errorf("got bearer %+v, want v2 Entra tokens and workloads, not forwarded", a.Bearer)
	}
}

// errCase is a catalogue that must be refused with the errors in want.
type errCase struct {
	name string
	doc  string
	want []wantErr
}

// refuseAll parses each case's document, changed by wrap when it is not
// nil, and checks that it is refused with exactly the wanted errors.
func refuseAll(t *testing.T, tests []errCase, wrap func(string) string) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if wrap != nil {
				doc = wrap(doc)
			}
			c, err := Parse("catalog.yaml", []byte(doc))
			if c != nil {
				t.Errorf("got a catalogue, want nil")
			}
			checkErrors(t, err, tt.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []errCase{
		// document shape
		{"empty", "", []wantErr{{0, ErrSyntax, "catalog.yaml: empty catalogue"}}},
		{"only comments", "# nothing\n", []wantErr{{0, ErrSyntax, "empty catalogue"}}},
		{"null document", "---\n~\n", []wantErr{{2, ErrSyntax, "empty catalogue"}}},
		{"not a mapping", "- a\n- b\n", []wantErr{{1, ErrSyntax, "must be a mapping with connector_groups and apps, got a list"}}},
		{"scalar", "hello\n", []wantErr{{1, ErrSyntax, "got a string"}}},
		{"several documents", header + "---\n" + header, []wantErr{{4, ErrSyntax, "several YAML documents"}}},
		{"syntax", "connector_groups: []\napps: [\n", []wantErr{{2, ErrSyntax, "catalog.yaml:2: invalid YAML:"}}},
		{"missing top keys", "connector_groups: []\n", []wantErr{{1, ErrMissing, `missing required key "apps"`}}},
		// unknown keys
		{"unknown root key", "connector_groups: []\napps: []\nap: []\n", []wantErr{{3, ErrUnknownKey, `catalog.yaml:3: unknown key "ap" (known keys: connector_groups, apps, home_tenant, entra, issuers)`}}},
		{"unknown app key", appDoc(nil, "    hots: x"), []wantErr{{9, ErrUnknownKey, `app "a": unknown key "hots"`}}},
		{"unknown group key", "connector_groups:\n  - id: hq\n    regoin: x\napps: []\n", []wantErr{{3, ErrUnknownKey, `connector group "hq": unknown key "regoin"`}}},
		{"repeated key", appDoc(nil, "    host: b.example.com"), []wantErr{{9, ErrDuplicate, `key "host" repeated (first at line 5)`}}},
		// wrong types
		{"apps not a list", "connector_groups: []\napps:\n  a: 1\n", []wantErr{{3, ErrType, "apps: got a mapping, want a list"}}},
		{"app not a mapping", header + "  - smartmoney\n", []wantErr{{4, ErrType, "app #1: got a string, want a mapping"}}},
		{"id is a list", appDoc(map[string]string{"id": "[a]"}), []wantErr{{4, ErrType, `app #1: id: got a list, want a string`}}},
		{"host is a boolean", appDoc(map[string]string{"host": "true"}), []wantErr{{5, ErrType, "host: got a boolean, want a string"}}},
		{"preauth is null", appDoc(map[string]string{"preauth": ""}), []wantErr{{8, ErrType, "preauth: got null, want a string"}}},
		{"skip verify not bool", appDoc(map[string]string{"internal_url": "https://x"}, `    tls_skip_verify: "yes"`), []wantErr{{9, ErrType, "tls_skip_verify: got a string, want true or false"}}},
		{"trust trace not bool", appDoc(nil, `    trust_trace_headers: "yes"`), []wantErr{{9, ErrType, "trust_trace_headers: got a string, want true or false"}}},
		{"timeout is a mapping", appDoc(nil, "    backend_timeout: {s: 1}"), []wantErr{{9, ErrType, "backend_timeout: got a mapping, want a string"}}},
		// missing keys: reported at the entry's first line
		{"missing host", appDoc(map[string]string{"host": omit}), []wantErr{{4, ErrMissing, `app "a": missing required key "host"`}}},
		{"missing id", appDoc(map[string]string{"id": omit}), []wantErr{{5, ErrMissing, `app #1: missing required key "id"`}}},
		{"missing group id", "connector_groups:\n  - region: eu\napps: []\n", []wantErr{{2, ErrMissing, `connector group #1: missing required key "id"`}}},
		// display names
		{"display name too long", appDoc(nil, "    display_name: "+strings.Repeat("x", 81)), []wantErr{{9, ErrValue, "display_name: got 81 characters, want 1 to 80"}}},
		{"display name empty", appDoc(nil, `    display_name: ""`), []wantErr{{9, ErrValue, "display_name: got 0 characters"}}},
		{"display name control", appDoc(nil, `    display_name: "Smart\u0007Money"`), []wantErr{{9, ErrValue, "control or unprintable"}}},
		{"display name newline", appDoc(nil, `    display_name: "Smart\nMoney"`), []wantErr{{9, ErrValue, "control or unprintable"}}},
		{"display name padded", appDoc(nil, `    display_name: " Smart"`), []wantErr{{9, ErrValue, "leading or trailing space"}}},
		{"display name a list", appDoc(nil, `    display_name: [a]`), []wantErr{{9, ErrType, "display_name: got a list, want a string"}}},
		// ids
		{"bad app id", appDoc(map[string]string{"id": "Smart_Money"}), []wantErr{{4, ErrValue, `id "Smart_Money": must be 1 to 63`}}},
		{"app id ends with hyphen", appDoc(map[string]string{"id": "a-"}), []wantErr{{4, ErrValue, `id "a-"`}}},
		{"app id too long", appDoc(map[string]string{"id": strings.Repeat("a", 64)}), []wantErr{{4, ErrValue, "must be 1 to 63"}}},
		{"bad group id", "connector_groups:\n  - id: -hq\napps: []\n", []wantErr{{2, ErrValue, `connector group "-hq": id "-hq"`}}},
		{"bad region", "connector_groups:\n  - id: hq\n    region: EU West\napps: []\n", []wantErr{{3, ErrValue, `region "EU West"`}}},
		// hosts
		{"host with scheme", appDoc(map[string]string{"host": "https://a.example.com"}), []wantErr{{5, ErrValue, "without a scheme"}}},
		{"host with port", appDoc(map[string]string{"host": "a.example.com:443"}), []wantErr{{5, ErrValue, "without a port"}}},
		{"host with path", appDoc(map[string]string{"host": "a.example.com/x"}), []wantErr{{5, ErrValue, "without a path"}}},
		{"wildcard host", appDoc(map[string]string{"host": `"*.example.com"`}), []wantErr{{5, ErrValue, "wildcard"}}},
		{"ip host", appDoc(map[string]string{"host": "10.0.0.1"}), []wantErr{{5, ErrValue, "not an IP address"}}},
		{"ipv6 host", appDoc(map[string]string{"host": `"[::1]"`}), []wantErr{{5, ErrValue, "not an IP address"}}},
		{"host bad label", appDoc(map[string]string{"host": "a_b.example.com"}), []wantErr{{5, ErrValue, "not a valid DNS name"}}},
		{"host empty label", appDoc(map[string]string{"host": "a..example.com"}), []wantErr{{5, ErrValue, "not a valid DNS name"}}},
		{"host empty", appDoc(map[string]string{"host": `""`}), []wantErr{{5, ErrValue, "must not be empty"}}},
		{"host too long", appDoc(map[string]string{"host": strings.Repeat("abcdefghi.", 26)}), []wantErr{{5, ErrValue, "longer than 253"}}},
		// internal URLs
		{"url scheme", appDoc(map[string]string{"internal_url": "ftp://x"}), []wantErr{{6, ErrValue, `catalog.yaml:6: app "a": internal_url "ftp://x": scheme must be http or https`}}},
		{"url relative", appDoc(map[string]string{"internal_url": "/base"}), []wantErr{{6, ErrValue, "scheme must be http or https"}}},
		{"url no host", appDoc(map[string]string{"internal_url": "http:///base"}), []wantErr{{6, ErrValue, "host required"}}},
		{"url opaque", appDoc(map[string]string{"internal_url": "http:10.0.0.1"}), []wantErr{{6, ErrValue, "absolute URL"}}},
		{"url user info", appDoc(map[string]string{"internal_url": "http://bob:hunter2@x"}), []wantErr{{6, ErrValue, "must not contain user info"}}},
		{"url query", appDoc(map[string]string{"internal_url": "http://x/?a=1"}), []wantErr{{6, ErrValue, "must not contain a query"}}},
		{"url empty query", appDoc(map[string]string{"internal_url": "http://x/?"}), []wantErr{{6, ErrValue, "must not contain a query"}}},
		{"url fragment", appDoc(map[string]string{"internal_url": `"http://x/#f"`}), []wantErr{{6, ErrValue, "must not contain a fragment"}}},
		{"url bad port", appDoc(map[string]string{"internal_url": "http://x:99999"}), []wantErr{{6, ErrValue, "port 99999 out of range"}}},
		{"url empty port", appDoc(map[string]string{"internal_url": `"http://x:"`}), []wantErr{{6, ErrValue, "empty port"}}},
		{"url unparsable", appDoc(map[string]string{"internal_url": `"http://x y"`}), []wantErr{{6, ErrValue, "not a URL"}}},
		// cross references and duplicates
		{"empty group", appDoc(map[string]string{"connector_group": `""`}), []wantErr{{7, ErrUnknownGroup, `connector_group "": no such connector group`}}},
		{"group is a list", appDoc(map[string]string{"connector_group": "[hq]"}), []wantErr{{7, ErrType, "connector_group: got a list, want a string"}}},
		{"no groups defined", "connector_groups: []\napps:\n" + appDoc(nil)[len(header):], []wantErr{{6, ErrUnknownGroup, "none are defined"}}},
		{"unknown group", appDoc(map[string]string{"connector_group": "dc9"}), []wantErr{{7, ErrUnknownGroup, `connector_group "dc9": no such connector group (defined: hq)`}}},
		{"duplicate app id", appDoc(nil, "  - id: a", "    host: b.example.com", "    internal_url: http://x", "    connector_group: hq", "    preauth: passthrough"),
			[]wantErr{{9, ErrDuplicate, `app "a": id already used at line 4`}}},
		{"duplicate host", appDoc(nil, "  - id: b", "    host: A.Example.COM", "    internal_url: http://x", "    connector_group: hq", "    preauth: passthrough"),
			[]wantErr{{10, ErrDuplicate, `app "b": host "a.example.com" already used by app "a" at line 5`}}},
		{"duplicate group id", "connector_groups:\n  - id: hq\n  - region: x\n    id: hq\napps: []\n", []wantErr{{4, ErrDuplicate, `connector group "hq": id already used at line 2`}}},
		// durations
		{"bad duration", appDoc(nil, "    backend_timeout: 85"), []wantErr{{9, ErrValue, `backend_timeout "85": not a duration`}}},
		{"zero duration", appDoc(nil, "    backend_timeout: 0s"), []wantErr{{9, ErrValue, "must be greater than zero"}}},
		{"negative duration", appDoc(nil, "    backend_timeout: -5s"), []wantErr{{9, ErrValue, "must be greater than zero"}}},
		// enums and combinations
		{"preauth unknown", appDoc(map[string]string{"preauth": "saml"}), []wantErr{{8, ErrValue, `preauth "saml": must be one of passthrough, entra, oidc`}}},
		{"host header", appDoc(nil, "    host_header: both"), []wantErr{{9, ErrValue, `host_header "both": must be internal or external`}}},
		{"skip verify on http", appDoc(nil, "    tls_skip_verify: true"), []wantErr{{9, ErrValue, "tls_skip_verify: only allowed with an https internal_url"}}},
	}
	refuseAll(t, tests, nil)
}

func TestParseErrorsRedactPassword(t *testing.T) {
	_, err := Parse("catalog.yaml", []byte(appDoc(map[string]string{"internal_url": "http://bob:hunter2@x"})))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got %v, want an error without the password", err)
	}
}

// TestParseMultipleErrors checks that all problems are reported together, in
// document order, even when a later check (unknown group) finds an earlier one.
func TestParseMultipleErrors(t *testing.T) {
	doc := `connector_groups:
  - id: hq
    colour: red
apps:
  - id: smartmoney
    host: smartmoney.apps.example.com
    internal_url: ftp://x
    connector_group: nowhere
    preauth: saml
  - id: smartmoney
    host: SMARTMONEY.apps.example.com
    internal_url: http://x
    connector_group: hq
    preauth: passthrough
    backend_timeout: soon
    tls_skip_verify: true
  - id: third
`
	_, err := Parse("catalog.yaml", []byte(doc))
	checkErrors(t, err, []wantErr{
		{3, ErrUnknownKey, `connector group "hq": unknown key "colour"`},
		{7, ErrValue, `catalog.yaml:7: app "smartmoney": internal_url "ftp://x": scheme must be http or https`},
		{8, ErrUnknownGroup, `connector_group "nowhere"`},
		{9, ErrValue, `preauth "saml": must be one of passthrough, entra, oidc`},
		{10, ErrDuplicate, "id already used at line 5"},
		{11, ErrDuplicate, `host "smartmoney.apps.example.com" already used`},
		{15, ErrValue, `backend_timeout "soon"`},
		{16, ErrValue, "tls_skip_verify"},
		{17, ErrMissing, `app "third": missing required key "host"`},
		{17, ErrMissing, `missing required key "connector_group"`},
		{17, ErrMissing, `missing required key "preauth"`},
		{17, ErrMissing, `missing required key "internal_url"`},
	})
	if !errors.Is(err, ErrValue) || !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want it to match ErrValue and ErrInvalid", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.yaml")
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want a read error that is not ErrInvalid", err)
	}
}

func TestGroupRegions(t *testing.T) {
	const head = "connector_groups:\n  - id: hq\n"
	const apps = "apps: []\n"
	good, err := Parse("catalog.yaml", []byte(head+"    region: us-east-1\n    pin_region: true\n    exclude_regions: [ap-southeast-1]\n"+apps))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := good.Group("hq")
	if !g.PinRegion || g.Region != "us-east-1" || len(g.ExcludeRegions) != 1 || g.ExcludeRegions[0] != "ap-southeast-1" {
		t.Errorf("got %+v", g)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"pin without region", "    pin_region: true\n", `catalog.yaml:3: connector group "hq": pin_region: needs the group's region`},
		{"exclude own region", "    region: eu\n    exclude_regions: [eu]\n", "excludes the group's own region eu"},
		{"exclude not a list", "    exclude_regions: eu\n", "exclude_regions: got"},
		{"pin not a bool", "    region: eu\n    pin_region: yes please\n", "pin_region"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("catalog.yaml", []byte(head+tt.body+apps))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
