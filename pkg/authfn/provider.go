package authfn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// provider is the discovered OpenID Connect provider. Discovery happens on
// first use, not at cold start, and is retried on the next request after a
// failure.
type provider struct {
	cfg *Config

	mu sync.Mutex // guards the following; held during discovery
	d  *discovered
}

// discovered is what discovery yields; immutable once built.
type discovered struct {
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string
}

// get returns the discovered provider, discovering it first if needed.
// Concurrent callers wait for one discovery.
func (p *provider) get(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d != nil {
		return p.d, nil
	}
	d, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	p.d = d
	return d, nil
}

// discover fetches the provider's metadata.
func (p *provider) discover(ctx context.Context) (*discovered, error) {
	c := p.cfg
	ctx = oidc.ClientContext(ctx, c.HTTPClient)
	if c.multiTenant() {
		// Entra's multi-tenant metadata names the issuer
		// "<base>/{tenantid}/v2.0", which no token carries: go-oidc is told
		// to accept it, and every token's iss is then checked exactly
		// against "<base>/<tid>/v2.0" for an allowed tid (checkIssuer).
		ctx = oidc.InsecureIssuerURLContext(ctx, c.EntraAuthorityBase+"/{tenantid}/v2.0")
	}
	op, err := oidc.NewProvider(ctx, c.discoveryURL())
	if err != nil {
		return nil, fmt.Errorf("discover provider %s: %w: %v", c.discoveryURL(), ErrProvider, err)
	}
	var meta struct {
		Issuer     string `json:"issuer"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discover provider: %w: %v", ErrProvider, err)
	}
	if c.multiTenant() && meta.Issuer != c.EntraAuthorityBase+"/{tenantid}/v2.0" {
		return nil, fmt.Errorf("discover provider: %w: multi-tenant metadata issuer %q, want %q",
			ErrProvider, meta.Issuer, c.EntraAuthorityBase+"/{tenantid}/v2.0")
	}
	ep := op.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, fmt.Errorf("discover provider: %w: metadata lacks authorization or token endpoint", ErrProvider)
	}
	ep.AuthStyle = oauth2.AuthStyleInParams
	return &discovered{
		oauth: oauth2.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret,
			Endpoint:     ep,
			RedirectURL:  c.AuthURL + "/callback",
			Scopes:       c.Scopes,
		},
		verifier: op.Verifier(&oidc.Config{
			ClientID:        c.ClientID,
			SkipIssuerCheck: c.multiTenant(),
			Now:             c.Now,
		}),
		endSession: meta.EndSession,
	}, nil
}

// checkIssuer checks the token's iss and tid beyond go-oidc: in Entra mode
// the tid must be allowed and iss exactly "<base>/<tid>/v2.0".
func (c *Config) checkIssuer(iss, tid string) error {
	if c.Mode != ModeEntra {
		if iss != c.Issuer { // go-oidc checked it already; belt and braces
			return fmt.Errorf("%w: issuer %q, want %q", ErrIDToken, iss, c.Issuer)
		}
		return nil
	}
	if tid == "" {
		return fmt.Errorf("%w: token has no tid", ErrIDToken)
	}
	if !c.tenantAllowed(tid) {
		return fmt.Errorf("%w: tenant %s is not allowed to sign in", ErrIDToken, tid)
	}
	if want := entraIssuer(c.EntraAuthorityBase, tid); iss != want {
		return fmt.Errorf("%w: issuer %q, want %q", ErrIDToken, iss, want)
	}
	return nil
}

// classifyVerifyError keeps go-oidc's message (it carries no token) under
// ErrIDToken.
func classifyVerifyError(err error) error {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return fmt.Errorf("%w: token expired at %s", ErrIDToken, exp.Expiry.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return fmt.Errorf("%w: %s", ErrIDToken, strings.TrimPrefix(err.Error(), "oidc: "))
}
