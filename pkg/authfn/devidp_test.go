package authfn

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

// devEnv is a Service signing in against the real development provider
// (zitadel op over TLS on 127.0.0.1).
type devEnv struct {
	*testEnv
	idp    *devidp.Provider
	client *http.Client // trusts the dev CA, does not follow redirects
}

func newDevEnv(t testing.TB) *devEnv {
	t.Helper()
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "*.localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tid, other := devidp.DemoTenantID, devidp.DemoOtherTenantID
	idp, err := devidp.Listen("127.0.0.1:0", devcert.ServerTLS(cert), devidp.Config{
		Issuer: "https://127.0.0.1:{port}/" + tid + "/v2.0",
		Users: []devidp.User{
			{Login: "alice", ObjectID: "a11ce000-0000-4000-8000-000000000001", Username: "alice@example.com", Name: "Alice",
				Groups: []string{groupMoney, groupNone}, Roles: []string{"SmartMoney.User", "Other.Role"}},
			{Login: "gina", ObjectID: "9e570000-0000-4000-8000-000000000002", HomeTenantID: other, Username: "gina_other#EXT#@example.com",
				Groups: []string{groupMoney}},
			{Login: "olga", ObjectID: "01940000-0000-4000-8000-000000000003", Username: "olga@example.com",
				Groups: []string{groupMoney}, ExtraGroups: 300},
			{Login: "carl", ObjectID: "ca410000-0000-4000-8000-000000000004", Username: "carl@example.com",
				Groups: []string{groupOther}, ACRs: []string{"c1"}},
			{Login: "oscar", ObjectID: "05ca0000-0000-4000-8000-000000000005", TenantID: other, Username: "oscar@other.example"},
		},
		Clients: []devidp.Client{{ID: clientID, Secret: "s3cret-value", RedirectURIs: []string{authURL + "/callback"},
			PostLogoutRedirectURIs: []string{"https://example.com/bye"}}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("devidp: %v", err)
	}
	t.Cleanup(func() { idp.Close() })
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = devcert.ServerTLS(cert).Clone()
	tr.TLSClientConfig.RootCAs, tr.TLSClientConfig.Certificates = ca.Pool(), nil
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	clk := testkit.NewClock(time.Now().Truncate(time.Second))
	logs := &testkit.SyncBuffer{}
	mesh := newTestMesh(t, clk.Now())
	// The provider's users are of its tenant: the catalogue's home tenant.
	mesh.cat = mustCatalog(t, strings.Replace(testCatalog, "home_tenant: "+tenantA, "home_tenant: "+tid, 1))
	base, _ := strings.CutSuffix(idp.Issuer(), "/"+tid+"/v2.0")
	cfg := Config{
		AuthURL: authURL, AppPort: ":8443", MeshAuthorityKeys: mesh.authorityKeys(), Keys: keys,
		StateKey: bytes.Repeat([]byte{5}, 32), EntraAuthorityBase: base, TenantID: tid, ClientID: clientID,
		ClientSecret: "s3cret-value", GraphURL: idp.GraphURL(), PostLogoutURLs: []string{"https://example.com/bye"},
		EndSessionRedirect: true, HTTPClient: client,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: clk.Now,
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &devEnv{testEnv: &testEnv{mesh: mesh, svc: svc, cfg: cfg, keys: keys, clock: clk, logs: logs}, idp: idp, client: &noFollow}
}

// login drives the provider's login page as user, from the authorization
// URL to the redirect back to the auth service's callback, and returns
// that callback's path and query.
func (d *devEnv) login(t testing.TB, authz *url.URL, user string) string {
	t.Helper()
	resp, err := d.client.Get(authz.String())
	if err != nil {
		t.Fatalf("authorization endpoint: %v", err)
	}
	resp.Body.Close()
	next, err := resp.Location()
	if err != nil {
		t.Fatalf("authorization endpoint: got status %d, want a redirect to the login page", resp.StatusCode)
	}
	id := next.Query().Get("id")
	resp, err = d.client.PostForm(next.Scheme+"://"+next.Host+"/login", url.Values{"id": {id}, "user": {user}})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	for range 5 { // follow the provider's own redirects until it sends the browser back to us
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("login: got status %d, want a redirect", resp.StatusCode)
		}
		if strings.HasPrefix(loc.String(), authURL+"/") {
			return strings.TrimPrefix(loc.String(), authURL)
		}
		if resp, err = d.client.Get(loc.String()); err != nil {
			t.Fatalf("follow %s: %v", loc.Redacted(), err)
		}
		resp.Body.Close()
	}
	t.Fatalf("login: too many redirects")
	return ""
}

// signInAs runs /authorize for app, logs in at the provider as user, and
// returns the callback's response.
func (d *devEnv) signInAs(t testing.TB, app, user string) *httptest.ResponseRecorder {
	t.Helper()
	s := d.start(t, app, "/x")
	return d.get(d.login(t, s.authURL, user), s.flow)
}

// startDev is start without the fake provider's URL check.
func (d *devEnv) start(t testing.TB, app, rd string, cookies ...*http.Cookie) *started {
	t.Helper()
	b := newBinding()
	w := d.get(d.authorizePath(t, app, rd, b), cookies...)
	u, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || !strings.HasPrefix(u.String(), d.idp.Issuer()) {
		t.Fatalf("authorize: got %d %q, want a redirect to the provider", w.Code, w.Header().Get("Location"))
	}
	return &started{flow: cookieNamed(w, FlowCookie), state: u.Query().Get("state"), authURL: u, b: b}
}

// TestDevIdPClaimCases signs in through the development provider for each
// claim shape it produces.
func TestDevIdPClaimCases(t *testing.T) {
	d := newDevEnv(t)
	tests := []struct {
		name, app, user string
		graphFails      bool
		status          int
		sub             string
		groups, roles   []string
		acrs            []string
	}{
		{name: "member", app: "smartmoney", user: "alice", status: 302, sub: devidp.DemoTenantID + "/a11ce000-0000-4000-8000-000000000001",
			groups: []string{groupMoney}, roles: []string{"SmartMoney.User"}},
		{name: "guest", app: "smartmoney", user: "gina", status: 302, sub: devidp.DemoTenantID + "/9e570000-0000-4000-8000-000000000002",
			groups: []string{groupMoney}},
		{name: "overage graph success", app: "smartmoney", user: "olga", status: 302, groups: []string{groupMoney}},
		{name: "overage graph failure", app: "smartmoney", user: "olga", graphFails: true, status: 403},
		{name: "overage graph failure ungated app", app: "wiki", user: "olga", graphFails: true, status: 302},
		{name: "acrs present", app: "vault", user: "carl", status: 302, groups: []string{groupOther}, acrs: []string{"c1"}},
		{name: "acrs absent", app: "vault", user: "alice", status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.idp.Graph().SetFailing(tt.graphFails)
			defer d.idp.Graph().SetFailing(false)
			w := d.signInAs(t, tt.app, tt.user)
			if tt.status != http.StatusFound {
				assertRefused(t, w, tt.status)
				return
			}
			ac := d.appToken(t, w, tt.app+".localhost")
			if tt.sub != "" && ac.Subject != tt.sub {
				t.Errorf("got sub %q, want %q", ac.Subject, tt.sub)
			}
			if !slices.Equal(ac.Groups, tt.groups) || !slices.Equal(ac.Roles, tt.roles) || !slices.Equal(ac.ACRs, tt.acrs) {
				t.Errorf("got groups %v roles %v acrs %v, want %v %v %v", ac.Groups, ac.Roles, ac.ACRs, tt.groups, tt.roles, tt.acrs)
			}
			if got, want := cookieNamed(w, SessionCookie) == nil, tt.graphFails; got != want {
				t.Errorf("got no global session %v, want %v (groups unavailable)", got, want)
			}
		})
	}
}

// TestDevIdPReplayAndLogout checks that the real provider refuses a
// replayed code, and that logout continues to its end-session endpoint.
func TestDevIdPReplayAndLogout(t *testing.T) {
	d := newDevEnv(t)
	s := d.start(t, "wiki", "/")
	cb := d.login(t, s.authURL, "alice")
	w := d.get(cb, s.flow)
	d.appToken(t, w, "wiki.localhost")
	assertRefused(t, d.get(cb, s.flow), http.StatusBadRequest)

	// The first pass carries the sign-out notice to the mesh (see
	// TestLogoutCarriesNoticeToMesh); the mesh sends the browser back with
	// done=1.
	w = d.get("/logout?app=wiki&done=1", cookieNamed(w, SessionCookie))
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), d.idp.BaseURL()) {
		t.Fatalf("logout: got %d %q, want a redirect to the provider's end-session endpoint", w.Code, w.Header().Get("Location"))
	}
	resp, err := d.client.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, _ := resp.Location(); got == nil || got.String() != "https://example.com/bye" {
		t.Errorf("end session: got status %d Location %v, want https://example.com/bye", resp.StatusCode, got)
	}
}
