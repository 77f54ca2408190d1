package benchrun

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The oauth2-proxy peer: the reverse proxy many operators put in front of
// an internal app for sign-in (github.com/oauth2-proxy/oauth2-proxy, the
// released binary, which .ci/run and task bench:real install with go
// install). It runs as its own process in front of the same backend, with
// the OIDC provider and the JSON Web Token bearer check it is most often
// given (--skip-jwt-bearer-tokens): every request carries a bearer token
// that oauth2-proxy verifies (signature, issuer, audience, expiry) before
// it proxies the request. The provider is an OpenID Connect discovery
// document and key set served by the bench process on loopback; the
// proxy fetches them at start only.

// OAuth2ProxyVersion is the oauth2-proxy release the peer row is measured
// with (go install github.com/oauth2-proxy/oauth2-proxy/v7@OAuth2ProxyVersion).
const OAuth2ProxyVersion = "v7.15.6"

// oauth2ProxyClientID is the peer's OIDC client id: the audience of the
// bearer token.
const oauth2ProxyClientID = "postern-bench"

// startOAuth2Proxy starts the oauth2-proxy process at exe in front of the
// backend, trusting issuer (startIssuer), and waits until a request with
// s.bearer reaches the backend and one without it is refused.
func (s *realSystem) startOAuth2Proxy(ctx context.Context, exe, issuer string) error {
	var err error
	if s.oauth2Proxy, err = freeAddr("tcp"); err != nil {
		return err
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret) // crypto/rand never fails
	// Secrets go by environment, never on a command line.
	env := []string{"OAUTH2_PROXY_CLIENT_SECRET=bench-secret", "OAUTH2_PROXY_COOKIE_SECRET=" + hex.EncodeToString(secret)}
	if err := s.startEnv(ctx, "oauth2-proxy", env, exe, "--http-address", s.oauth2Proxy, "--upstream", "http://"+s.backend+"/",
		"--provider", "oidc", "--oidc-issuer-url", issuer, "--client-id", oauth2ProxyClientID, "--email-domain", "*",
		"--skip-jwt-bearer-tokens", "--cookie-secure=false"); err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	url := "http://" + s.oauth2Proxy + "/hello"
	if err := waitHTTPWith(ctx, c, url, s.bearerAuth, s.proc("oauth2-proxy")); err != nil {
		return err
	}
	// Without the token the proxy must not pass the request: the row
	// measures a real check.
	resp, err := noRedirect(c).Get(url)
	if err != nil {
		return fmt.Errorf("benchrun: oauth2-proxy without a token: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return fmt.Errorf("benchrun: oauth2-proxy answered 200 without a token: the check is off")
	}
	return nil
}

// checkBearer waits until the postern-bearer app answers with s.bearer
// through meshd, and checks that it refuses a request without it and one
// with a token it must not accept: the row measures a real check.
func (s *realSystem) checkBearer(ctx context.Context, c *http.Client) error {
	url := "https://" + realBearerHost + "/hello"
	if err := waitHTTPWith(ctx, c, url, s.bearerAuth, s.proc("meshd")); err != nil {
		return err
	}
	nr := noRedirect(&http.Client{Transport: c.Transport, Timeout: c.Timeout})
	for _, tok := range []string{"", s.bearer[:len(s.bearer)-4] + "AAAA"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := nr.Do(req)
		if err != nil {
			return fmt.Errorf("benchrun: %s with a bad token: %w", realBearerHost, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("benchrun: %s answered %d without a valid token, want 401: the bearer check is off", realBearerHost, resp.StatusCode)
		}
	}
	return nil
}

// bearerAuth adds the peer's bearer token to req.
func (s *realSystem) bearerAuth(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+s.bearer)
}

// realBearerSubject is the sub of the bench issuer's token, which the
// postern-bearer app's policy names.
const realBearerSubject = "bench-user"

// workloadClaims are the claims a GitHub Actions job's OIDC token carries
// besides the registered ones, so that the bench token is as long as the
// tokens callers really send: 1.2 KB, as an Entra access token.
var workloadClaims = map[string]any{
	"jti": "5a8b0c0e-6f0e-4d47-9e7a-1c2d3e4f5a61", "ref": "refs/heads/main", "ref_type": "branch",
	"sha": "9f3c1a2e8b4d4c7e9a150d2b7e6f4c8112ab34cd", "repository": "contoso/records", "repository_id": "712345678",
	"repository_owner": "contoso", "run_id": "11223344556", "run_number": "421", "run_attempt": "1",
	"actor": "octocat", "event_name": "push", "environment": "production", "workflow": "deploy",
	"workflow_ref": "contoso/records/.github/workflows/deploy.yml@refs/heads/main",
}

// startIssuer serves an OpenID Connect discovery document and an RS256 key
// set on loopback (plain HTTP), signs the bench user's token for
// oauth2ProxyClientID into s.bearer and returns the issuer URL. The
// oauth2-proxy peer and meshd's postern-bearer app trust it.
func (s *realSystem) startIssuer() (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	issuer := "http://" + l.Addr().String()
	discovery, _ := json.Marshal(map[string]any{
		"issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
		"jwks_uri": issuer + "/jwks", "userinfo_endpoint": issuer + "/userinfo", "response_types_supported": []string{"code"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
	})
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: "RS256", Use: "sig"}}})
	mux := http.NewServeMux()
	serveJSON := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
	}
	mux.Handle("GET /.well-known/openid-configuration", serveJSON(discovery))
	mux.Handle("GET /jwks", serveJSON(jwks))
	s.issuerSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		// ErrServerClosed after stop; any other failure shows as the
		// proxy failing to start.
		_ = s.issuerSrv.Serve(l)
	}()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	s.bearer, err = jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuer, Subject: realBearerSubject, Audience: jwt.Audience{oauth2ProxyClientID},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(12 * time.Hour))}).
		Claims(map[string]any{"email": "bench@example.test", "email_verified": true}).Claims(workloadClaims).Serialize()
	if err != nil {
		return "", err
	}
	return issuer, nil
}
