package meshnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/nodekeys"
	"github.com/postern/postern/pkg/session"
)

// newAuthConfig builds the edge's pre-authentication settings: a verifier
// of app tokens against the auth functions' JWKS, a verified-token cache,
// the signer of the identity assertions sent to backends (this node's node
// key, under the mesh's issuer) with the mesh's assertion key set (every
// node's certified node key, served at /.postern/jwks.json), and the
// signer of the app requests that browsers carry to the auth functions
// (this node's node key and credential).
func newAuthConfig(cfg Config, nodeKey authority.Key, logger *slog.Logger) (*edge.AuthConfig, *nodekeys.Set, error) {
	if cfg.AuthURL == "" {
		return nil, nil, nil
	}
	base := strings.TrimSuffix(cfg.AuthURL, "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return nil, nil, fmt.Errorf("meshnode: auth URL %q: want https://host", cfg.AuthURL)
	}
	keys, err := nodekeys.New(nodekeys.Config{Verifier: cfg.Authority})
	if err != nil {
		return nil, nil, fmt.Errorf("meshnode: %w", err)
	}
	if err := keys.Update([][]byte{cfg.NodeCredential.Bytes()}); err != nil {
		return nil, nil, fmt.Errorf("meshnode: assertion keys: %w", err)
	}
	assertions, err := session.NewAssertionSigner(session.AssertionSignerConfig{Issuer: assertionIssuer(cfg),
		Key: nodeKey.Public(), Sign: nodeKey.Sign, NotAfter: cfg.NodeCredential.Expires})
	if err != nil {
		return nil, nil, fmt.Errorf("meshnode: %w", err)
	}
	v := session.NewVerifier(session.VerifierConfig{JWKSURL: base + "/.well-known/jwks.json",
		HTTPClient: cfg.AuthHTTPClient, Issuer: base, Logger: logger, Now: cfg.Now})
	requests, err := appreq.NewSigner(appreq.SignerConfig{Credential: cfg.NodeCredential, Sign: nodeKey.Sign, Audience: base})
	if err != nil {
		return nil, nil, fmt.Errorf("meshnode: %w", err)
	}
	return &edge.AuthConfig{AuthURL: base, Verifier: v, Requests: requests, Cache: session.NewCache(v, 100_000),
		Assertions: assertions, AssertionKeys: keys}, keys, nil
}

// checkAuthKeys fetches and verifies the auth functions' JWKS at start
// when the catalogue has a pre-authenticated app, so that a node that
// could verify no sign-in refuses to start instead of failing every
// sign-in later. It retries for Config.AuthStartupWait (the auth
// functions may be starting too), except after a certificate error, which
// names --auth-ca, the flag that fixes it.
func (n *Node) checkAuthKeys(ctx context.Context) error {
	if n.auth == nil || !needsSignIn(n.catalog.Current()) {
		return nil
	}
	wait := n.cfg.AuthStartupWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	deadline := n.cfg.Now().Add(wait)
	var err error
	for {
		if err = n.auth.Verifier.Refresh(ctx); err == nil {
			return nil
		}
		if isCertError(err) || ctx.Err() != nil || !n.cfg.Now().Before(deadline) {
			break
		}
		left := deadline.Sub(n.cfg.Now())
		n.logger.Warn("auth_keys_unavailable", "auth_url", n.auth.AuthURL, "error", err, "retry_for", left.Round(time.Second).String())
		// Once a second, and a last time at the deadline.
		t := time.NewTimer(min(time.Second, left))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	hint := "check --auth-url and that the auth functions are up"
	if isCertError(err) {
		hint = "the auth functions' certificate is not trusted: give its CA with --auth-ca FILE"
	}
	return fmt.Errorf("%w: the catalogue has pre-authenticated apps, and %s/.well-known/jwks.json could not be fetched and verified (%s): %w",
		ErrAuthKeys, n.auth.AuthURL, hint, err)
}

// isCertError reports whether err comes from verifying a TLS certificate.
func isCertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &verify)
}

// assertionIssuer returns the iss of the node's identity assertions: the
// mesh's, from its cluster label.
func assertionIssuer(cfg Config) string {
	if cfg.Cluster != nil {
		return nodekeys.Issuer(cfg.Cluster.Label)
	}
	return nodekeys.Issuer("")
}
