package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds a fetched JWKS document.
const maxJWKSBytes = 1 << 20

// keySet is the cached signing keys of one issuer: found through the
// issuer's discovery document (or a configured JWKS URL), refetched when
// older than MaxAge, or when a token names an unknown kid, at most once per
// RefetchInterval. A lookup of a known kid takes no lock.
type keySet struct {
	v      *Verifier
	issuer string // discovery is at issuer + "/.well-known/openid-configuration"
	fixed  string // configured JWKS URL; empty means discovery

	keys   atomic.Pointer[map[string]jose.JSONWebKey] // last good set, by kid
	goodAt atomic.Int64                               // Unix nanoseconds of the last good fetch

	mu      sync.Mutex // guards the following; held during a fetch
	lastTry time.Time
	jwksURL string // from discovery; cleared when a fetch fails
}

// key returns the key kid, fetching the key set first when kid is unknown
// or the set is stale (each at most once per RefetchInterval).
func (k *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if m := k.keys.Load(); m != nil {
		if jwk, ok := (*m)[kid]; ok && !k.stale() {
			return jwk, nil
		}
	}
	fetchErr := k.refreshIfAllowed(ctx)
	m := k.keys.Load()
	if m == nil {
		if fetchErr != nil {
			return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrKeysUnavailable, fetchErr)
		}
		return jose.JSONWebKey{}, ErrKeysUnavailable
	}
	if jwk, ok := (*m)[kid]; ok {
		return jwk, nil
	}
	return jose.JSONWebKey{}, ErrUnknownKey
}

func (k *keySet) stale() bool {
	return k.v.cfg.Now().Sub(time.Unix(0, k.goodAt.Load())) > k.v.cfg.MaxAge
}

// refreshIfAllowed fetches the key set unless a fetch was tried within
// RefetchInterval; a failure keeps the last good set and is logged.
func (k *keySet) refreshIfAllowed(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.v.cfg.Now()
	if !k.lastTry.IsZero() && now.Sub(k.lastTry) < k.v.cfg.RefetchInterval {
		return nil
	}
	k.lastTry = now
	err := k.fetchLocked(ctx)
	if err != nil {
		k.v.log.Warn("bearer_keys_fetch_failed", "issuer", k.issuer, "error", err)
	}
	return err
}

// fetchLocked discovers the JWKS URL if needed and fetches the key set.
func (k *keySet) fetchLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, k.v.client), k.v.cfg.FetchTimeout)
	defer cancel()
	url := k.fixed
	if url == "" {
		if k.jwksURL == "" {
			var err error
			if k.jwksURL, err = discover(ctx, k.issuer); err != nil {
				return err
			}
		}
		url = k.jwksURL
	}
	keys, err := k.v.fetchJWKS(ctx, url)
	if err != nil {
		k.jwksURL = "" // discover again next time: the document may have moved
		return err
	}
	k.keys.Store(&keys)
	k.goodAt.Store(k.v.cfg.Now().UnixNano())
	return nil
}

// discover returns the jwks_uri of issuer's discovery document, which must
// name issuer exactly (go-oidc checks).
func discover(ctx context.Context, issuer string) (string, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return "", fmt.Errorf("discover %s: %w", issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return "", fmt.Errorf("discover %s: no jwks_uri", issuer)
	}
	return meta.JWKS, nil
}

// fetchJWKS fetches and parses a JWKS document.
func (v *Verifier) fetchJWKS(ctx context.Context, url string) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks %s: status %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch jwks %s: larger than %d bytes", url, maxJWKSBytes)
	}
	return parseJWKS(data)
}

// parseJWKS returns the asymmetric signing keys of a JWKS document by kid.
// Symmetric keys, keys for encryption, keys without kid and unusable keys
// are skipped; a document with none left is an error.
func parseJWKS(data []byte) (map[string]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse jwks: not a JWKS document")
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || !k.Valid() {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys[k.KeyID] = k
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("parse jwks: no asymmetric signing key with a kid")
	}
	return keys, nil
}

// keySetFor returns the cached key set of an issuer, creating it on first
// use; name identifies it ("entra:<tid>", "wif:<id>").
func (v *Verifier) keySetFor(name, issuer, fixedURL string) *keySet {
	v.mu.Lock()
	defer v.mu.Unlock()
	ks, ok := v.keySets[name]
	if !ok || ks.issuer != issuer || ks.fixed != fixedURL {
		ks = &keySet{v: v, issuer: issuer, fixed: fixedURL}
		v.keySets[name] = ks
	}
	return ks
}
