package authfn

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/session"
)

// Environment variables read by [ConfigFromEnv]; functions/README.md
// documents each one.
const (
	EnvAuthURL            = "POSTERN_AUTH_URL"
	EnvAppPort            = "POSTERN_APP_PORT"
	EnvKeys               = "POSTERN_SESSION_KEYS"
	EnvStateKey           = "POSTERN_STATE_KEY"
	EnvMode               = "POSTERN_OIDC_MODE"
	EnvIssuer             = "POSTERN_OIDC_ISSUER"
	EnvEntraAuthority     = "POSTERN_ENTRA_AUTHORITY"
	EnvTenantID           = "POSTERN_ENTRA_TENANT_ID"
	EnvAllowedTenants     = "POSTERN_ENTRA_ALLOWED_TENANTS"
	EnvClientID           = "POSTERN_OIDC_CLIENT_ID"
	EnvClientSecret       = "POSTERN_OIDC_CLIENT_SECRET"
	EnvScopes             = "POSTERN_OIDC_SCOPES"
	EnvClaimUser          = "POSTERN_OIDC_CLAIM_USER"
	EnvClaimName          = "POSTERN_OIDC_CLAIM_NAME"
	EnvClaimGroups        = "POSTERN_OIDC_CLAIM_GROUPS"
	EnvClaimRoles         = "POSTERN_OIDC_CLAIM_ROLES"
	EnvGraphURL           = "POSTERN_GRAPH_URL"
	EnvSessionLifetime    = "POSTERN_SESSION_LIFETIME"
	EnvPostLogoutURLs     = "POSTERN_POST_LOGOUT_URLS"
	EnvEndSessionRedirect = "POSTERN_END_SESSION_REDIRECT"
	EnvCAFile             = "POSTERN_CA_FILE"
	EnvMeshAuthorityKey   = "POSTERN_MESH_AUTHORITY_PUBLIC_KEY"
)

// ConfigFromEnv builds a Config from environment variables read through
// getenv (os.Getenv in production). Secrets (session keys, state key, client
// secret) are loaded from their sources: "env:NAME", "file:/path" (mode
// 0600 or stricter) or "secretsmanager:<arn or name>" through sm (nil
// refuses that kind). The mesh authority's public key (not a secret) is
// given itself or as "file:/path". HTTPClient (unless EnvCAFile is set),
// Logger and Now are left for the caller. Errors name the variable, never
// a value.
func ConfigFromEnv(ctx context.Context, getenv func(string) string, sm session.SecretsGetter) (Config, error) {
	c := Config{
		AuthURL:            getenv(EnvAuthURL),
		AppPort:            getenv(EnvAppPort),
		Mode:               getenv(EnvMode),
		Issuer:             getenv(EnvIssuer),
		EntraAuthorityBase: getenv(EnvEntraAuthority),
		TenantID:           getenv(EnvTenantID),
		AllowedTenants:     list(getenv(EnvAllowedTenants)),
		ClientID:           getenv(EnvClientID),
		ClaimMapping: ClaimMapping{
			UserID: getenv(EnvClaimUser), Name: getenv(EnvClaimName),
			Groups: getenv(EnvClaimGroups), Roles: getenv(EnvClaimRoles),
		},
		GraphURL:       getenv(EnvGraphURL),
		PostLogoutURLs: list(getenv(EnvPostLogoutURLs)),
	}
	if v := getenv(EnvScopes); v != "" {
		c.Scopes = list(v)
	}
	fail := func(name string, err error) (Config, error) {
		return Config{}, fmt.Errorf("config from environment: %s: %w", name, err)
	}
	var err error
	if v := getenv(EnvSessionLifetime); v != "" {
		if c.SessionLifetime, err = time.ParseDuration(v); err != nil || c.SessionLifetime <= 0 {
			return fail(EnvSessionLifetime, fmt.Errorf("%w: want a positive Go duration such as 12h", ErrConfig))
		}
	}
	if v := getenv(EnvEndSessionRedirect); v != "" {
		if c.EndSessionRedirect, err = strconv.ParseBool(v); err != nil {
			return fail(EnvEndSessionRedirect, fmt.Errorf("%w: want true or false", ErrConfig))
		}
	}
	if c.MeshAuthorityKeys, err = meshAuthorityKeys(getenv(EnvMeshAuthorityKey)); err != nil {
		return fail(EnvMeshAuthorityKey, err)
	}
	src := getenv(EnvKeys)
	if src == "" {
		return fail(EnvKeys, fmt.Errorf("%w: required (env:NAME, file:/path or secretsmanager:<id>)", ErrConfig))
	}
	ksData, err := session.ReadSecret(ctx, getenv, src, sm)
	if err != nil {
		return fail(EnvKeys, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if c.Keys, err = session.ParseKeyset(ksData); err != nil {
		return fail(EnvKeys, err)
	}
	sk, err := loadSecret(ctx, getenv, getenv(EnvStateKey), sm)
	if err != nil {
		return fail(EnvStateKey, err)
	}
	if c.StateKey, err = decodeKey(sk); err != nil {
		return fail(EnvStateKey, err)
	}
	if v := getenv(EnvClientSecret); v != "" {
		if c.ClientSecret, err = loadSecret(ctx, getenv, v, sm); err != nil {
			return fail(EnvClientSecret, err)
		}
	}
	if v := getenv(EnvCAFile); v != "" {
		if c.HTTPClient, err = clientWithCA(v); err != nil {
			return fail(EnvCAFile, err)
		}
	}
	return c, nil
}

// meshAuthorityKeys parses the mesh authority's public keys: base64 keys
// (comma-separated during a rotation) or PEM blocks, given directly or in
// a file ("file:/path").
func meshAuthorityKeys(v string) ([]ed25519.PublicKey, error) {
	if v == "" {
		return nil, fmt.Errorf("%w: required: the mesh authority's public key (meshd authority public-key)", ErrConfig)
	}
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		v = string(b)
	}
	keys, err := nodecred.ParsePublicKeys(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return keys, nil
}

// loadSecret reads a secret from source through [session.ReadSecret],
// whose errors never show a value; they join the ErrConfig class.
func loadSecret(ctx context.Context, getenv func(string) string, source string, sm session.SecretsGetter) (string, error) {
	v, err := session.ReadSecret(ctx, getenv, source, sm)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return string(v), nil
}

// decodeKey decodes a 32-byte key written in base64 (standard or URL
// alphabet, padded or not).
func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: want 32 random bytes in base64 (openssl rand -base64 32)", ErrConfig)
}

// clientWithCA returns an HTTP client that also trusts the PEM CA
// certificates in path (the development provider's CA).
func clientWithCA(path string) (*http.Client, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, nil
}

// list splits a comma- or space-separated list.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
