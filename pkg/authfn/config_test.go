package authfn

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

// TestConfigErrors checks that New refuses impossible configurations.
func TestConfigErrors(t *testing.T) {
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		return Config{AuthURL: "https://auth.example.com", MeshAuthorityKeys: newTestMesh(t, time.Now()).authorityKeys(), Keys: keys,
			StateKey: bytes.Repeat([]byte{1}, 32), TenantID: tenantA, ClientID: "c"}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"auth url http", func(c *Config) { c.AuthURL = "http://auth.example.com" }},
		{"auth url with path", func(c *Config) { c.AuthURL = "https://auth.example.com/x" }},
		{"auth url relative", func(c *Config) { c.AuthURL = "auth.example.com" }},
		{"app port", func(c *Config) { c.AppPort = "8443" }},
		{"no mesh authority key", func(c *Config) { c.MeshAuthorityKeys = nil }},
		{"mesh authority key of the wrong size", func(c *Config) { c.MeshAuthorityKeys = []ed25519.PublicKey{make([]byte, 31)} }},
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"short state key", func(c *Config) { c.StateKey = c.StateKey[:16] }},
		{"no client id", func(c *Config) { c.ClientID = "" }},
		{"bad mode", func(c *Config) { c.Mode = "saml" }},
		{"no tenant", func(c *Config) { c.TenantID = "" }},
		{"tenant common", func(c *Config) { c.TenantID = "common" }},
		{"tenant and allow-list", func(c *Config) { c.AllowedTenants = []string{tenantB} }},
		{"organizations in allow-list", func(c *Config) { c.TenantID, c.AllowedTenants = "", []string{"organizations"} }},
		{"issuer not the tenant's", func(c *Config) { c.Issuer = "https://login.microsoftonline.com/" + tenantB + "/v2.0" }},
		{"oidc without issuer", func(c *Config) { c.Mode, c.TenantID = ModeOIDC, "" }},
		{"oidc with tenant", func(c *Config) { c.Mode, c.Issuer = ModeOIDC, "https://idp.example.com" }},
		{"post-logout relative", func(c *Config) { c.PostLogoutURLs = []string{"/bye"} }},
		{"negative lifetime", func(c *Config) { c.SessionLifetime = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Errorf("got error %v, want ErrConfig", err)
			}
		})
	}
	if _, err := New(base()); err != nil {
		t.Errorf("valid config: got %v, want nil", err)
	}
}

// TestConfigFromEnv checks the environment loader, including secret
// sources and the refusal of group-readable secret files.
func TestConfigFromEnv(t *testing.T) {
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("client-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	mesh, rotated := newTestMesh(t, time.Now()), newTestMesh(t, time.Now())
	pub := func(m *testMesh) string { return nodecred.MarshalPublicKey(m.authorityKeys()[0]) }
	der, err := x509.MarshalPKIXPublicKey(rotated.authorityKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "authority.pub")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		EnvMeshAuthorityKey: pub(mesh) + "," + pub(rotated),
		EnvAuthURL:          "https://auth.example.com", EnvKeys: "file:" + keyFile, EnvStateKey: "env:STATE",
		"STATE": state, EnvTenantID: tenantA, EnvClientID: "cid", EnvClientSecret: "env:SECRET", "SECRET": "sss",
		EnvScopes: "profile, email", EnvSessionLifetime: "8h", EnvPostLogoutURLs: "https://a.example/,https://b.example/",
		EnvEndSessionRedirect: "true", EnvAllowedTenants: "",
	}
	getenv := func(k string) string { return env[k] }
	c, err := ConfigFromEnv(t.Context(), getenv, nil)
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	if c.ClientSecret != "sss" || len(c.StateKey) != 32 || c.Keys.ActiveKID() != keys.ActiveKID() ||
		c.SessionLifetime.Hours() != 8 || len(c.PostLogoutURLs) != 2 || !c.EndSessionRedirect || len(c.Scopes) != 2 {
		t.Errorf("got config %+v, want the values from the environment", c)
	}
	if len(c.MeshAuthorityKeys) != 2 || !c.MeshAuthorityKeys[1].Equal(rotated.authorityKeys()[0]) {
		t.Errorf("got mesh authority keys %v, want both", c.MeshAuthorityKeys)
	}
	env[EnvMeshAuthorityKey] = "file:" + pemFile
	if c, err := ConfigFromEnv(t.Context(), getenv, nil); err != nil || len(c.MeshAuthorityKeys) != 1 || !c.MeshAuthorityKeys[0].Equal(rotated.authorityKeys()[0]) {
		t.Errorf("PEM file: got %v, %v", c.MeshAuthorityKeys, err)
	}
	bad := []struct{ key, value, want string }{
		{EnvMeshAuthorityKey, "", EnvMeshAuthorityKey},
		{EnvMeshAuthorityKey, "bm90IGEga2V5", EnvMeshAuthorityKey},
		{EnvMeshAuthorityKey, "file:" + filepath.Join(dir, "missing"), EnvMeshAuthorityKey},
		{EnvKeys, "", EnvKeys},
		{EnvKeys, "file:" + secretFile, EnvKeys},
		{EnvStateKey, "env:NOPE", EnvStateKey},
		{"STATE", "c2hvcnQ=", EnvStateKey},
		{EnvClientSecret, "file:" + secretFile, "chmod 600"},
		{EnvClientSecret, "secretsmanager:arn:aws:secretsmanager:x", "Secrets Manager"},
		{EnvSessionLifetime, "forever", EnvSessionLifetime},
		{EnvEndSessionRedirect, "maybe", EnvEndSessionRedirect},
	}
	for _, b := range bad {
		t.Run(b.key+"="+b.value, func(t *testing.T) {
			old := env[b.key]
			env[b.key] = b.value
			defer func() { env[b.key] = old }()
			_, err := ConfigFromEnv(t.Context(), getenv, nil)
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("got error %v, want one mentioning %q", err, b.want)
			}
			if err != nil && (strings.Contains(err.Error(), state) || strings.Contains(err.Error(), "sss")) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// TestConfigFromEnvNeverEchoesSecrets puts secrets where their sources
// belong, and bad values in the variables they name, with the separators
// an operator's secret may contain: no error shows four characters of one.
func TestConfigFromEnvNeverEchoesSecrets(t *testing.T) {
	keys, err := session.GenerateKeyset()
	if err != nil {
		t.Fatal(err)
	}
	keyJSON, err := keys.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Hq7Tzw9k:Lp=Rb/2x,Vn;m|Q@s t"
	base := map[string]string{
		EnvAuthURL: "https://auth.example.com", EnvKeys: "env:KEYS", "KEYS": string(keyJSON),
		EnvStateKey: "env:STATE", "STATE": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32)),
		EnvTenantID: tenantA, EnvClientID: "cid", EnvClientSecret: "env:SECRET", "SECRET": "sss",
	}
	cases := []map[string]string{
		{EnvClientSecret: secret},
		{EnvClientSecret: "env:" + secret},
		{EnvClientSecret: "client:" + secret},
		{EnvStateKey: secret},
		{EnvStateKey: "env:" + secret},
		{"STATE": secret},                 // not a 32-byte base64 key
		{"STATE": secret + secret + "=="}, // nor this
		{EnvKeys: string(keyJSON)},        // the key set itself, not its source
		{"KEYS": `{"active":"` + secret + `","keys":[]}`},
		{"KEYS": string(keyJSON[:len(keyJSON)-3])}, // truncated JSON
		{EnvSessionLifetime: secret},
	}
	pieces := []string{secret}
	var file struct {
		Keys []struct {
			D string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(keyJSON, &file); err != nil || len(file.Keys) == 0 || file.Keys[0].D == "" {
		t.Fatalf("key set JSON without private keys: %v", err)
	}
	for _, k := range file.Keys {
		pieces = append(pieces, k.D)
	}
	for i, over := range cases {
		env := maps.Clone(base)
		maps.Copy(env, over)
		_, err := ConfigFromEnv(t.Context(), func(k string) string { return env[k] }, nil)
		if err == nil {
			t.Errorf("case %d (%v): accepted", i, slices.Collect(maps.Keys(over)))
			continue
		}
		if !errors.Is(err, ErrConfig) && !errors.Is(err, session.ErrBadKeyset) {
			t.Errorf("case %d: error %v is neither ErrConfig nor ErrBadKeyset", i, err)
		}
		for _, s := range pieces {
			if p := testkit.SecretPiece(err.Error(), s, 5); p != "" {
				t.Errorf("case %d: error %q shows %q of a secret", i, err, p)
			}
		}
	}
}
