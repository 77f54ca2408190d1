package jws

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Algorithm is the only "alg" a token may carry.
const Algorithm = "EdDSA"

// DefaultMaxSize is the cap on a token's length when [Policy.MaxSize] is
// zero: far above any token Postern signs (an app token with 500 groups
// is about 25 KiB), far below what would make parsing costly.
const DefaultMaxSize = 64 << 10

// Sentinel errors, used where [Errors] leaves a class nil. No error of
// this package contains the token.
var (
	// ErrMalformed means the token breaks the header policy or does not
	// decode (size, shape, encoding, an extra or repeated header, no kid).
	ErrMalformed = errors.New("jws: malformed token")
	// ErrAlgorithm means the token's alg is not exactly EdDSA.
	ErrAlgorithm = errors.New("jws: algorithm not accepted")
	// ErrSignature means the signature does not verify with the key that
	// the kid names.
	ErrSignature = errors.New("jws: bad signature")
	// ErrType means the token's typ is not the expected one.
	ErrType = errors.New("jws: wrong token type")
)

// Errors are the caller's sentinels, one per class of failure, so that
// each caller's errors keep wrapping exactly one of its own sentinels. A
// nil field means this package's sentinel for that class.
type Errors struct {
	Malformed error
	Algorithm error
	Signature error
	Type      error
}

// Policy is what a caller verifies tokens against. Its zero value is
// usable: the default size cap and this package's sentinels.
type Policy struct {
	// MaxSize caps a token's length in bytes; zero means DefaultMaxSize.
	MaxSize int
	// Errors maps failure classes to the caller's sentinels; zero fields
	// mean this package's sentinels.
	Errors Errors
}

// Header is a token's protected header once it has passed the policy.
type Header struct {
	KeyID string
	Type  string
}

// allowed are the only header members a token may carry.
var allowed = map[string]bool{"alg": true, "kid": true, "typ": true}

// Verify checks token under p: the header policy, then the key that key
// returns for the kid (an error from key is returned as it is, so that
// the caller keeps its own unknown-key error), then the signature, then
// typ. It returns the payload (not yet decoded as JSON) and the kid. It
// is safe on untrusted input of any size.
func (p Policy) Verify(token, typ string, key func(kid string) (ed25519.PublicKey, error)) ([]byte, string, error) {
	h, parts, err := p.parse(token)
	if err != nil {
		return nil, "", err
	}
	pub, err := key(h.KeyID)
	if err != nil {
		return nil, "", err
	}
	sig, err := decode(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize ||
		!ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, "", fmt.Errorf("kid %.64q: %w", h.KeyID, p.err(p.Errors.Signature, ErrSignature))
	}
	if h.Type != typ {
		return nil, "", fmt.Errorf("typ %.32q, want %q: %w", h.Type, typ, p.err(p.Errors.Type, ErrType))
	}
	payload, err := decode(parts[1])
	if err != nil {
		return nil, "", fmt.Errorf("payload encoding: %w", p.malformed())
	}
	return payload, h.KeyID, nil
}

// parse applies the size and header policy to token and returns its
// header and its three parts.
func (p Policy) parse(token string) (Header, []string, error) {
	maxSize := p.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(token) > maxSize {
		return Header{}, nil, fmt.Errorf("%d bytes, over the %d-byte cap: %w", len(token), maxSize, p.malformed())
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Header{}, nil, fmt.Errorf("got %d parts, want 3: %w", len(parts), p.malformed())
	}
	raw, err := decode(parts[0])
	if err != nil {
		return Header{}, nil, fmt.Errorf("header encoding: %w", p.malformed())
	}
	hdr, err := headerMembers(raw)
	if err != nil {
		return Header{}, nil, fmt.Errorf("header: %w: %w", p.malformed(), err)
	}
	if alg := hdr["alg"]; alg != Algorithm {
		return Header{}, nil, fmt.Errorf("alg %.16q, want %s: %w", alg, Algorithm, p.err(p.Errors.Algorithm, ErrAlgorithm))
	}
	if hdr["kid"] == "" {
		return Header{}, nil, fmt.Errorf("no kid header: %w", p.malformed())
	}
	return Header{KeyID: hdr["kid"], Type: hdr["typ"]}, parts, nil
}

// headerMembers decodes a header that must be one JSON object of string
// members, each allowed and none repeated, with nothing after it.
func headerMembers(raw []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	hdr := make(map[string]string, len(allowed))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errors.New("bad member name")
		}
		name, _ := t.(string)
		if !allowed[name] {
			return nil, fmt.Errorf("unsupported header %.16q", name)
		}
		if _, dup := hdr[name]; dup {
			return nil, fmt.Errorf("repeated header %q", name)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("header %q is not a string", name)
		}
		hdr[name] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return hdr, nil
}

// decode decodes one part: unpadded base64url, canonical (no stray bits),
// so that each token has exactly one spelling.
func decode(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

func (p Policy) malformed() error { return p.err(p.Errors.Malformed, ErrMalformed) }

func (p Policy) err(mine, own error) error {
	if mine != nil {
		return mine
	}
	return own
}
