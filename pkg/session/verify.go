package session

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/jwks"
	"github.com/postern/postern/pkg/jws"
)

// DefaultSkew is the clock skew allowed on exp, nbf and iat.
const DefaultSkew = 30 * time.Second

// VerifierConfig configures a [Verifier]. Set Static, JWKSURL, or both
// (Static keys are then always trusted and the URL adds to them).
type VerifierConfig struct {
	// JWKSURL is the auth functions' /.well-known/jwks.json; empty means
	// static keys only.
	JWKSURL string
	// HTTPClient fetches JWKSURL; nil means a client with FetchTimeout.
	HTTPClient *http.Client
	// Static is a JWKS document (as from [Keyset.JWKS]) trusted without
	// fetching; nil means none.
	Static []byte
	// Issuer is the iss that tokens must carry (the auth URL, or the
	// mesh's issuer for identity assertions); empty means any non-empty
	// iss.
	Issuer string
	// Skew is the clock skew allowed on exp, nbf and iat; zero means
	// [DefaultSkew].
	Skew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// FetchTimeout bounds one JWKS fetch; zero means 5s.
	FetchTimeout time.Duration
	// RefetchInterval is the least time between two fetches triggered by
	// an unknown kid (or by a failed fetch); zero means 30s.
	RefetchInterval time.Duration
	// MaxAge is how long a fetched JWKS is used before it is refetched on
	// the next verification; zero means 1h.
	MaxAge time.Duration
	// Logger receives fetch failures; nil means slog.Default().
	Logger *slog.Logger
}

// Verifier verifies tokens against a static or remote JWKS. It is safe for
// concurrent use; a verification with a known kid takes no lock.
type Verifier struct {
	cfg       VerifierConfig
	static    map[string]ed25519.PublicKey
	staticErr error     // why Static did not parse, reported on every verification
	remote    *jwks.Set // nil without JWKSURL
}

// NewVerifier returns a verifier for cfg. It does no network I/O: the
// remote JWKS is fetched on first use (or by [Verifier.Refresh]). A Static
// document that does not parse makes every verification fail with
// [ErrBadKeyset].
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.JWKSURL != "" {
		v.remote = jwks.New(jwks.Config{URL: cfg.JWKSURL, Accept: isEd25519, HTTPClient: cfg.HTTPClient,
			Now: cfg.Now, FetchTimeout: cfg.FetchTimeout, RefetchInterval: cfg.RefetchInterval,
			MaxAge: cfg.MaxAge, Logger: cfg.Logger})
	}
	if cfg.Static != nil {
		v.static, v.staticErr = parseJWKS(cfg.Static)
	}
	return v
}

// VerifyApp verifies an app token for the app at audience (its host,
// without port) and returns its claims.
func (v *Verifier) VerifyApp(ctx context.Context, token, audience string) (*AppClaims, error) {
	var c AppClaims
	if err := v.verify(ctx, token, TypeApp, &c); err != nil {
		return nil, fmt.Errorf("verify app token: %w", err)
	}
	if err := v.checkClaims(c.Audience, audience, c.Issuer, true, c.IssuedAt, c.NotBefore, c.Expiry); err != nil {
		return nil, fmt.Errorf("verify app token: %w", err)
	}
	if c.Subject == "" || c.AppID == "" {
		return nil, fmt.Errorf("verify app token: %w: sub and app are required", ErrMalformed)
	}
	return &c, nil
}

// VerifySession verifies a global session token for the auth host
// audience and returns its claims.
func (v *Verifier) VerifySession(ctx context.Context, token, audience string) (*SessionClaims, error) {
	var c SessionClaims
	if err := v.verify(ctx, token, TypeSession, &c); err != nil {
		return nil, fmt.Errorf("verify session token: %w", err)
	}
	if err := v.checkClaims(c.Audience, audience, c.Issuer, true, c.IssuedAt, 0, c.Expiry); err != nil {
		return nil, fmt.Errorf("verify session token: %w", err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("verify session token: %w: sub is required", ErrMalformed)
	}
	return &c, nil
}

// VerifyLogout verifies a sign-out notice carried to the app at audience
// (its host, without port) and returns its claims.
func (v *Verifier) VerifyLogout(ctx context.Context, token, audience string) (*LogoutClaims, error) {
	var c LogoutClaims
	if err := v.verify(ctx, token, TypeLogout, &c); err != nil {
		return nil, fmt.Errorf("verify logout notice: %w", err)
	}
	if err := v.checkClaims(c.Audience, audience, c.Issuer, true, c.IssuedAt, 0, c.Expiry); err != nil {
		return nil, fmt.Errorf("verify logout notice: %w", err)
	}
	if c.SessionID == "" {
		return nil, fmt.Errorf("verify logout notice: %w: sid is required", ErrMalformed)
	}
	return &c, nil
}

// VerifyAssertion verifies an identity assertion for the app at audience,
// as a backend (or a test) would with the mesh's assertion JWKS.
func (v *Verifier) VerifyAssertion(ctx context.Context, token, audience string) (*AssertionClaims, error) {
	var c AssertionClaims
	if err := v.verify(ctx, token, TypeAssert, &c); err != nil {
		return nil, fmt.Errorf("verify assertion: %w", err)
	}
	if err := v.checkClaims(c.Audience, audience, c.Issuer, true, c.IssuedAt, 0, c.Expiry); err != nil {
		return nil, fmt.Errorf("verify assertion: %w", err)
	}
	return &c, nil
}

// policy is the one strict header policy of pkg/jws (only alg, kid and
// typ; EdDSA only) with this package's sentinels.
var policy = jws.Policy{Errors: jws.Errors{
	Malformed: ErrMalformed, Algorithm: ErrMalformed, Signature: ErrBadSignature, Type: ErrWrongType,
}}

// verify checks the JWS under the strict header policy (EdDSA only; no
// header but alg, kid and typ; typ; a known kid; the signature) and
// decodes its payload into claims.
func (v *Verifier) verify(ctx context.Context, token, typ string, claims any) error {
	payload, _, err := policy.Verify(token, typ, func(kid string) (ed25519.PublicKey, error) {
		return v.key(ctx, kid)
	})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(payload, claims); err != nil {
		return fmt.Errorf("%w: claims do not decode", ErrMalformed)
	}
	return nil
}

// checkClaims checks audience, issuer and times with the configured skew.
func (v *Verifier) checkClaims(aud, wantAud, iss string, needIss bool, iat, nbf, exp int64) error {
	now := v.cfg.Now()
	skew := int64(v.cfg.Skew / time.Second)
	switch {
	case wantAud == "" || aud != wantAud:
		return ErrWrongAudience
	case needIss && iss == "":
		return fmt.Errorf("%w: no iss", ErrWrongIssuer)
	case needIss && v.cfg.Issuer != "" && iss != v.cfg.Issuer:
		return ErrWrongIssuer
	case exp <= 0 || iat <= 0:
		return fmt.Errorf("%w: exp and iat are required", ErrMalformed)
	case now.Unix() >= exp+skew:
		return ErrExpired
	case iat > now.Unix()+skew:
		return fmt.Errorf("%w: issued in the future", ErrNotYetValid)
	case nbf > now.Unix()+skew:
		return ErrNotYetValid
	}
	return nil
}

// key returns the public key kid: a static one, or one of the remote
// JWKS, fetched when the kid is unknown (at most once per
// RefetchInterval) or the fetched set is older than MaxAge.
func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if v.staticErr != nil {
		return nil, v.staticErr
	}
	if pub, ok := v.static[kid]; ok {
		return pub, nil
	}
	if v.remote == nil {
		return nil, ErrUnknownKey
	}
	k, err := v.remote.Key(ctx, kid)
	if err != nil {
		return nil, ErrUnknownKey
	}
	return k.Key.(ed25519.PublicKey), nil // isEd25519 kept only those
}

// HasKeys reports whether v can verify anything: it has static keys, or
// a fetch of the remote JWKS has succeeded (the last good set is kept
// when later fetches fail).
func (v *Verifier) HasKeys() bool {
	return v.staticErr == nil && len(v.static) > 0 || v.remote != nil && v.remote.Loaded()
}

// Refresh fetches the remote JWKS now, regardless of the refetch interval.
// On failure the last good set stays in use.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.remote == nil {
		return nil
	}
	err := v.remote.Refresh(ctx)
	if errors.Is(err, jwks.ErrBadKeySet) {
		err = fmt.Errorf("no Ed25519 signing key with a kid: %w", err)
	}
	if err != nil {
		return fmt.Errorf("fetch jwks: %w: %w", ErrJWKSFetch, err)
	}
	return nil
}

// isEd25519 keeps the Ed25519 keys of a JWKS that are for EdDSA (or name
// no algorithm).
func isEd25519(k jose.JSONWebKey) bool {
	_, ok := k.Key.(ed25519.PublicKey)
	return ok && (k.Algorithm == "" || k.Algorithm == string(jose.EdDSA))
}

// parseJWKS returns the Ed25519 signing keys of a JWKS document by kid.
// Keys of other types, or for another use or algorithm, are skipped; a
// document with no usable key is an error.
func parseJWKS(data []byte) (map[string]ed25519.PublicKey, error) {
	set, err := jwks.Parse(data, isEd25519)
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w: no Ed25519 signing key with a kid: %w", ErrBadKeyset, err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set))
	for kid, k := range set {
		keys[kid] = k.Key.(ed25519.PublicKey)
	}
	return keys, nil
}
