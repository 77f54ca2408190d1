package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/jwks"
)

// asymmetric keeps the usable asymmetric keys of a JWKS: symmetric keys
// and unusable ones are skipped.
func asymmetric(k jose.JSONWebKey) bool {
	switch k.Key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k.Valid()
	}
	return false
}

// keySetFor returns the cached key set of an issuer (found through its
// discovery document, at fixedURL, or in file), creating it on first use;
// name identifies it ("entra:<tid>", "wif:<id>").
func (v *Verifier) keySetFor(name, issuer, fixedURL, file string) *jwks.Set {
	v.mu.Lock()
	defer v.mu.Unlock()
	ks, ok := v.keySets[name]
	if !ok || !ks.For(issuer, fixedURL, file) {
		ks = jwks.New(jwks.Config{URL: fixedURL, File: file, Issuer: issuer, Accept: asymmetric, HTTPClient: v.cfg.HTTPClient,
			Now: v.cfg.Now, FetchTimeout: v.cfg.FetchTimeout, RefetchInterval: v.cfg.RefetchInterval,
			MaxAge: v.cfg.MaxAge, Logger: v.log})
		v.keySets[name] = ks
	}
	return ks
}

// key returns the key kid of ks, with this package's errors.
func key(ctx context.Context, ks *jwks.Set, kid string) (jose.JSONWebKey, error) {
	k, err := ks.Key(ctx, kid)
	switch {
	case errors.Is(err, jwks.ErrUnavailable):
		return k, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	case err != nil:
		return k, ErrUnknownKey
	}
	return k, nil
}
