package devidp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/devidp"
)

const testIssuer = "https://idp.localhost:8444/" + devidp.DemoTenantID + "/v2.0"

func TestConfigRefused(t *testing.T) {
	user := devidp.User{ObjectID: "o1", Username: "u1@x"}
	client := devidp.Client{ID: "c", RedirectURIs: []string{"https://auth.localhost/cb"}}
	tests := []struct {
		name string
		cfg  devidp.Config
	}{
		{"empty issuer", devidp.Config{}},
		{"http issuer", devidp.Config{Issuer: "http://idp.localhost/t/v2.0"}},
		{"issuer with query", devidp.Config{Issuer: testIssuer + "?x=1"}},
		{"issuer with trailing slash", devidp.Config{Issuer: testIssuer + "/"}},
		{"user without oid", devidp.Config{Issuer: testIssuer, Users: []devidp.User{{Username: "u@x"}}}},
		{"user without username", devidp.Config{Issuer: testIssuer, Users: []devidp.User{{ObjectID: "o"}}}},
		{"duplicate user", devidp.Config{Issuer: testIssuer, Users: []devidp.User{user, user}}},
		{"bad tenant", devidp.Config{Issuer: testIssuer, Users: []devidp.User{{ObjectID: "o", Username: "u@x", TenantID: "../x"}}}},
		{"second tenant without tenant-shaped issuer", devidp.Config{Issuer: "https://idp.localhost", Users: []devidp.User{{ObjectID: "o", Username: "u@x", TenantID: "t2"}}}},
		{"client without redirect", devidp.Config{Issuer: testIssuer, Clients: []devidp.Client{{ID: "c"}}}},
		{"client with bad redirect", devidp.Config{Issuer: testIssuer, Clients: []devidp.Client{{ID: "c", RedirectURIs: []string{"javascript:alert(1)"}}}}},
		{"missing users file", devidp.Config{Issuer: testIssuer, Clients: []devidp.Client{client}, UsersFile: "testdata/nope.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := devidp.New(tc.cfg); err == nil {
				t.Fatalf("got nil error, want a refusal")
			}
		})
	}
	if err := (&devidp.Provider{}).Close(); err != nil {
		t.Errorf("close of an unstarted provider: got %v, want nil", err)
	}
}

func TestLoadUsers(t *testing.T) {
	users, err := devidp.LoadUsers("testdata/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 5 || users[0].Login != "alice" {
		t.Fatalf("got %d users, want 5 starting with alice", len(users))
	}
	if got := devidp.DemoUsers(); len(got) != len(users) || got[2].ExtraGroups != 499 {
		t.Errorf("DemoUsers: got %d users, want the %d of testdata/users.yaml", len(got), len(users))
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("users:\n  - oid: x\n    pasword: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devidp.LoadUsers(bad); err == nil {
		t.Errorf("unknown field: got nil error, want a refusal")
	}
	p, err := devidp.New(devidp.Config{Issuer: testIssuer, UsersFile: "testdata/users.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range p.Users() {
		if u.Login == "carol" && len(u.Groups) != 500 {
			t.Errorf("carol: got %d groups, want 500", len(u.Groups))
		}
	}
}

func TestLoginPageEscapes(t *testing.T) {
	hostile := `"><script>alert(1)</script>`
	p, err := devidp.New(devidp.Config{
		Issuer:  testIssuer,
		Users:   []devidp.User{{Login: hostile, ObjectID: "o1", Username: "u@x", Name: hostile}},
		Clients: []devidp.Client{{ID: "c", RedirectURIs: []string{"https://auth.localhost/cb"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"client_id": {"c"}, "redirect_uri": {"https://auth.localhost/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, testIssuer+"/authorize?"+q.Encode(), nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || err != nil || loc.Path != "/login" {
		t.Fatalf("authorize: got %d %q, want 302 to /login", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, loc.String(), nil))
	body := rec.Body.String()
	if rec.Code != 200 || strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("login page: got %d, want the hostile name escaped: %s", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://idp.localhost:8444/login?id=nope", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("unknown request: got %d, want 400", rec.Code)
	}
	if !errors.Is(p.Close(), nil) || p.Close() != nil {
		t.Errorf("close twice: want nil")
	}
}
