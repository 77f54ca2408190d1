package devidp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// WorkloadIssuer is a bare OpenID Connect issuer of workload tokens,
// standing in for GitHub Actions (token.actions.githubusercontent.com) or a
// Kubernetes API server in tests and the demo: it serves its discovery
// document and JWKS, and mints tokens with the claims it is given. It has
// no users and no authorization endpoint, as those issuers have none.
type WorkloadIssuer struct {
	issuer string
	key    signingKey
	now    func() time.Time

	mu   sync.Mutex // guards the following
	srv  *http.Server
	done chan struct{}
}

// NewWorkloadIssuer returns an issuer named issuer (an https URL; it
// serves discovery at issuer + "/.well-known/openid-configuration" and
// its keys at issuer + "/jwks"); now is its clock, nil meaning time.Now.
func NewWorkloadIssuer(issuer string, now func() time.Time) (*WorkloadIssuer, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.HasSuffix(issuer, "/") {
		return nil, fmt.Errorf("%w: workload issuer %q must be an https URL without a trailing slash", ErrBadConfig, issuer)
	}
	k, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("devidp: workload issuer: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &WorkloadIssuer{issuer: issuer, key: k, now: now}, nil
}

// ListenWorkloadIssuer listens on addr with TLS and serves a new issuer
// until Close; a "{port}" in issuer is replaced by the port listened on.
func ListenWorkloadIssuer(addr string, tlsConfig *tls.Config, issuer string) (*WorkloadIssuer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: workload issuer: %w", err)
	}
	issuer = strings.ReplaceAll(issuer, "{port}", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	w, err := NewWorkloadIssuer(issuer, nil)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv, done := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second}, make(chan struct{})
	w.srv, w.done = srv, done
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, tlsConfig)) // returns ErrServerClosed after Close
	}()
	return w, nil
}

// Issuer returns the issuer URL, the iss of its tokens.
func (w *WorkloadIssuer) Issuer() string { return w.issuer }

// ServeHTTP serves the discovery document and the JWKS under the issuer's
// path.
func (w *WorkloadIssuer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	u, _ := url.Parse(w.issuer)
	switch r.URL.Path {
	case u.Path + "/.well-known/openid-configuration":
		writeJSON(rw, map[string]any{
			"issuer": w.issuer, "jwks_uri": w.issuer + "/jwks",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case u.Path + "/jwks":
		writeJSON(rw, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &w.key.key.PublicKey, KeyID: w.key.kid, Algorithm: "RS256", Use: "sig"}}})
	default:
		http.NotFound(rw, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Mint signs a token with claims, adding iss, iat, nbf and exp (now +
// ttl) unless claims set them.
func (w *WorkloadIssuer) Mint(claims map[string]any, ttl time.Duration) (string, error) {
	c := maps.Clone(claims)
	now := w.now()
	for k, v := range map[string]any{"iss": w.issuer, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix()} {
		if _, ok := c[k]; !ok {
			c[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: &jose.JSONWebKey{Key: w.key.key, KeyID: w.key.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("devidp: mint: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devidp: mint: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: mint: %w", err)
	}
	return jws.CompactSerialize()
}

// Close stops serving (after ListenWorkloadIssuer); it is idempotent.
func (w *WorkloadIssuer) Close() error {
	w.mu.Lock()
	srv, done := w.srv, w.done
	w.srv = nil
	w.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	<-done
	return err
}

// GitHubClaims returns the claims GitHub Actions puts in a job's OIDC
// token for repository repo ("owner/name"), ref ("refs/heads/main") and
// environment (empty for a job without one), for audience aud.
func GitHubClaims(repo, ref, environment, aud string) map[string]any {
	owner, _, _ := strings.Cut(repo, "/")
	sub := "repo:" + repo + ":ref:" + ref
	if environment != "" {
		sub = "repo:" + repo + ":environment:" + environment
	}
	c := map[string]any{
		"sub": sub, "aud": aud, "repository": repo, "repository_owner": owner, "ref": ref,
		"ref_type": "branch", "sha": "0123456789abcdef0123456789abcdef01234567", "workflow": "deploy",
		"job_workflow_ref": repo + "/.github/workflows/deploy.yml@" + ref, "event_name": "push",
		"actor": "octocat", "runner_environment": "github-hosted", "jti": strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	if environment != "" {
		c["environment"] = environment
	}
	return c
}

// KubernetesClaims returns the claims a Kubernetes API server puts in a
// projected ServiceAccount token of pod (name) running as service account
// serviceAccount in namespace, for audience aud: sub
// "system:serviceaccount:<namespace>:<service account>", aud as a list, and
// the kubernetes.io claim naming the namespace, the pod and the service
// account with their uids.
func KubernetesClaims(namespace, serviceAccount, pod, aud string) map[string]any {
	uid := func(s string) string {
		h := fnv.New64a()
		h.Write([]byte(s))
		x := h.Sum64()
		return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(x>>32), uint16(x>>16), uint16(x)&0xfff, uint16(x>>4)&0xfff, x&0xffffffffffff)
	}
	return map[string]any{
		"sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"aud": []string{aud},
		"jti": strconv.FormatInt(time.Now().UnixNano(), 36),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"pod":            map[string]any{"name": pod, "uid": uid("pod/" + namespace + "/" + pod)},
			"serviceaccount": map[string]any{"name": serviceAccount, "uid": uid("sa/" + namespace + "/" + serviceAccount)},
		},
	}
}
