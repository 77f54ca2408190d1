package devidp_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/postern/postern/pkg/devidp"
)

const (
	daemonID     = "11111111-2222-4333-8444-555555555555"
	strangerID   = "99999999-2222-4333-8444-555555555555"
	daemonSecret = "daemon-secret"
	apiV2ID      = "0a1b2c3d-0000-4000-8000-00000000a002"
	apiV1ID      = "0a1b2c3d-0000-4000-8000-00000000a001"
)

// payload decodes a JWT's claims without verifying it (the tests that
// verify are in pkg/bearer and the end-to-end tests).
func payload(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) clientCredentials(t testing.TB, id, scope string) (*oauth2.Token, error) {
	t.Helper()
	f := e.newFlow(t, e.p.Issuer(), "openid")
	cc := clientcredentials.Config{ClientID: id, ClientSecret: daemonSecret, TokenURL: f.conf.Endpoint.TokenURL,
		Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInParams}
	return cc.Token(e.ctx(t))
}

func TestClientCredentialsTokenShapes(t *testing.T) {
	e := startIDP(t)
	tid := devidp.DemoTenantID
	tests := []struct {
		name, client, scope string
		want                map[string]any
		wantRoles           []string
		absent              []string
	}{
		{"v2 with roles", daemonID, "api://records/.default",
			map[string]any{"ver": "2.0", "iss": e.p.Issuer(), "aud": apiV2ID, "azp": daemonID, "tid": tid, "idtyp": "app"},
			[]string{"Records.Read.All"}, []string{"appid", "scp"}},
		{"v2 by client id", daemonID, apiV2ID + "/.default",
			map[string]any{"ver": "2.0", "aud": apiV2ID, "azp": daemonID}, []string{"Records.Read.All"}, []string{"appid", "scp"}},
		{"v1", daemonID, "api://legacy/.default",
			map[string]any{"ver": "1.0", "iss": "https://sts.windows.net/" + tid + "/", "aud": "api://legacy", "appid": daemonID},
			nil, []string{"azp", "scp", "roles", "idtyp"}},
		{"any client of the tenant gets a token, without roles", strangerID, "api://records/.default",
			map[string]any{"ver": "2.0", "azp": strangerID}, nil, []string{"roles", "scp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := e.clientCredentials(t, tc.client, tc.scope)
			if err != nil {
				t.Fatalf("client credentials: %v", err)
			}
			c := payload(t, tok.AccessToken)
			for k, v := range tc.want {
				if c[k] != v {
					t.Errorf("%s: got %v, want %v", k, c[k], v)
				}
			}
			if got := strs(c["roles"]); !slices.Equal(got, tc.wantRoles) {
				t.Errorf("roles: got %v, want %v", got, tc.wantRoles)
			}
			for _, k := range tc.absent {
				if _, ok := c[k]; ok {
					t.Errorf("%s: present (%v), want absent", k, c[k])
				}
			}
			if c["oid"] == "" || c["oid"] != c["sub"] {
				t.Errorf("oid %v and sub %v: want the service principal's object id in both", c["oid"], c["sub"])
			}
		})
	}
}

func TestClientCredentialsRefusals(t *testing.T) {
	e := startIDP(t)
	for _, tc := range []struct{ name, client, scope string }{
		{"not .default", daemonID, "api://records/Records.Read"},
		{"unknown API", daemonID, "api://nope/.default"},
		{"graph", daemonID, "https://graph.microsoft.com/.default"},
		{"public client", clientID + "-nope", "api://records/.default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.clientCredentials(t, tc.client, tc.scope)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode/100 != 4 {
				t.Fatalf("got %v, want a 4xx token error", err)
			}
		})
	}
	f := e.newFlow(t, e.p.Issuer(), "openid")
	cc := clientcredentials.Config{ClientID: daemonID, ClientSecret: "wrong", TokenURL: f.conf.Endpoint.TokenURL,
		Scopes: []string{"api://records/.default"}, AuthStyle: oauth2.AuthStyleInParams}
	if _, err := cc.Token(e.ctx(t)); err == nil {
		t.Error("wrong secret: got a token, want a refusal")
	}
}

func TestDelegatedAPIToken(t *testing.T) {
	e := startIDP(t)
	for _, tc := range []struct {
		name, scope string
		want        map[string]any
	}{
		{"v2", "openid profile api://records/Records.Read", map[string]any{"ver": "2.0", "aud": apiV2ID, "azp": clientID, "scp": "Records.Read", "idtyp": "user"}},
		{"v1", "openid api://legacy/Legacy.Read", map[string]any{"ver": "1.0", "aud": "api://legacy", "appid": clientID, "scp": "Legacy.Read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, idc := e.signIn(t, e.p.Issuer(), "bob", tc.scope)
			c := payload(t, tok.AccessToken)
			for k, v := range tc.want {
				if c[k] != v {
					t.Errorf("%s: got %v, want %v", k, c[k], v)
				}
			}
			if c["oid"] != idc["oid"] || c["tid"] != devidp.DemoTenantID {
				t.Errorf("oid/tid: got %v/%v, want the user's %v", c["oid"], c["tid"], idc["oid"])
			}
			if !slices.Contains(strs(c["roles"]), "SmartMoney.Admin") {
				t.Errorf("roles: got %v, want bob's app roles", c["roles"])
			}
		})
	}
}

func TestRotateKey(t *testing.T) {
	e := startIDP(t)
	old := e.p.KeyID()
	kid, err := e.p.RotateKey()
	if err != nil || kid == old || e.p.KeyID() != kid {
		t.Fatalf("rotate: got %q (%v), want a new current kid other than %q", kid, err, old)
	}
	var jwks struct{ Keys []struct{ Kid string } }
	getJSON(t, e.http, e.p.Issuer()+"/keys", &jwks)
	if len(jwks.Keys) != 2 || jwks.Keys[0].Kid != kid || jwks.Keys[1].Kid != old {
		t.Fatalf("jwks after rotation: got %+v, want [%s %s]", jwks.Keys, kid, old)
	}
	tok, err := e.clientCredentials(t, daemonID, "api://records/.default")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
	if !strings.Contains(string(h), kid) {
		t.Errorf("token header %s: want the new kid %s", h, kid)
	}
	e.p.RetireOldKeys()
	getJSON(t, e.http, e.p.Issuer()+"/keys", &jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != kid {
		t.Fatalf("jwks after retiring: got %+v, want [%s]", jwks.Keys, kid)
	}
}
