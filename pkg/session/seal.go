package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Sealer encrypts and authenticates short-lived state (the OIDC flow
// cookie) as a compact JWE with "dir" key management and A256GCM, so the
// browser can carry it but neither read nor change it. It is safe for
// concurrent use.
type Sealer struct {
	key [32]byte
	now func() time.Time
}

// sealed wraps a sealed value with its expiry.
type sealed struct {
	Expiry int64           `json:"exp"`
	Value  json.RawMessage `json:"v"`
}

// NewSealer returns a sealer with a 32-byte key; now nil means time.Now.
func NewSealer(key []byte, now func() time.Time) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("new sealer: key must be 32 bytes, got %d", len(key))
	}
	if now == nil {
		now = time.Now
	}
	s := &Sealer{now: now}
	copy(s.key[:], key)
	return s, nil
}

// Seal encodes v as JSON and encrypts it, valid for ttl.
func (s *Sealer) Seal(v any, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("seal: ttl must be positive")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	payload, err := json.Marshal(sealed{Expiry: s.now().Add(ttl).Unix(), Value: raw})
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: s.key[:]}, nil)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	jwe, err := enc.Encrypt(payload)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return jwe.CompactSerialize()
}

// Open decrypts tok into v. A token that does not decrypt with this key
// (tampered, another key, not a JWE) is [ErrMalformed]; one past its ttl is
// [ErrExpired].
func (s *Sealer) Open(tok string, v any) error {
	jwe, err := jose.ParseEncryptedCompact(tok, []jose.KeyAlgorithm{jose.DIRECT}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return fmt.Errorf("open sealed state: %w", ErrMalformed)
	}
	payload, err := jwe.Decrypt(s.key[:])
	if err != nil {
		return fmt.Errorf("open sealed state: %w", ErrMalformed)
	}
	var w sealed
	if err := json.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("open sealed state: %w", ErrMalformed)
	}
	if s.now().Unix() >= w.Expiry {
		return fmt.Errorf("open sealed state: %w", ErrExpired)
	}
	if err := json.Unmarshal(w.Value, v); err != nil {
		return fmt.Errorf("open sealed state: %w: value does not decode", ErrMalformed)
	}
	return nil
}
