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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds a fetched JWKS or discovery document.
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
	ctx, cancel := context.WithTimeout(ctx, k.v.cfg.FetchTimeout)
	defer cancel()
	url := k.fixed
	if url == "" {
		if k.jwksURL == "" {
			var err error
			if k.jwksURL, err = k.v.discover(ctx, k.issuer); err != nil {
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

// discover returns the jwks_uri of issuer's discovery document
// (issuer + "/.well-known/openid-configuration"), which must name issuer
// exactly.
func (v *Verifier) discover(ctx context.Context, issuer string) (string, error) {
	data, err := v.getJSON(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("discover %s: %w", issuer, err)
	}
	var meta struct {
		Issuer string `json:"issuer"`
		JWKS   string `json:"jwks_uri"`
	}
	switch {
	case json.Unmarshal(data, &meta) != nil:
		return "", fmt.Errorf("discover %s: not a discovery document", issuer)
	case meta.Issuer != issuer:
		return "", fmt.Errorf("discover %s: the document names issuer %.200q", issuer, meta.Issuer)
	case meta.JWKS == "":
		return "", fmt.Errorf("discover %s: no jwks_uri", issuer)
	}
	return meta.JWKS, nil
}

// fetchJWKS fetches and parses a JWKS document.
func (v *Verifier) fetchJWKS(ctx context.Context, url string) (map[string]jose.JSONWebKey, error) {
	data, err := v.getJSON(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	return parseJWKS(data)
}

// getJSON fetches a JSON document of at most maxJWKSBytes.
func (v *Verifier) getJSON(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
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
