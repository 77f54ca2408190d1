// Package jwks keeps a remote JSON Web Key Set: where to find it (a
// configured URL, or an issuer's OpenID discovery document), when to fetch
// it again (when older than MaxAge, or when a token names an unknown kid —
// at most once per RefetchInterval, so that forged kids cannot make a
// verifier hammer the provider) and which of its keys to keep. Failed
// fetches keep the last good set. The mesh's sign-in verifier (the auth
// functions' keys, pkg/session) and the bearer-token verifier (Entra's
// and workload issuers' keys, pkg/bearer) both use it.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxBytes bounds a fetched JWKS or discovery document.
const MaxBytes = 1 << 20

// Sentinel errors. None contains a key.
var (
	// ErrUnavailable means no key set could be fetched yet; it wraps the
	// last fetch's error.
	ErrUnavailable = errors.New("jwks: key set unavailable")
	// ErrUnknownKey means the key set does not list the kid.
	ErrUnknownKey = errors.New("jwks: unknown kid")
	// ErrBadKeySet means a document is not a JWKS or has no key to keep.
	ErrBadKeySet = errors.New("jwks: invalid key set")
)

// Config configures a [Set].
type Config struct {
	// URL is the JWKS document's address; empty means File, or the
	// jwks_uri of Issuer's discovery document.
	URL string
	// File, if set (and URL is not), is a local JWKS document read
	// instead of fetched, again at each refresh, for an issuer whose keys
	// are not published where the verifier can reach them (a cluster
	// whose service-account issuer is private: the operator copies its
	// keys, kubectl get --raw /openid/v1/jwks, into the file). Empty
	// means URL or discovery.
	File string
	// Issuer is found at Issuer + "/.well-known/openid-configuration",
	// whose "issuer" must be Issuer exactly; used only when URL is empty.
	Issuer string
	// Accept says whether a key is kept, beyond the rules that always
	// apply (a kid; use "sig" or none); nil keeps every such key.
	Accept func(jose.JSONWebKey) bool
	// HTTPClient fetches the documents; nil means a client with
	// FetchTimeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FetchTimeout bounds one discovery and fetch; zero means 5s.
	FetchTimeout time.Duration
	// RefetchInterval is the least time between two fetches triggered by
	// an unknown kid (or a failed fetch); zero means 30s.
	RefetchInterval time.Duration
	// MaxAge is how long a fetched set is used before the next lookup
	// fetches it again; zero means 1h.
	MaxAge time.Duration
	// Logger receives fetch failures (jwks_fetch_failed, with jwks_url or
	// issuer, and error); nil discards.
	Logger *slog.Logger
}

// Set is a cached remote key set. It is safe for concurrent use; a lookup
// of a known kid in a fresh set takes no lock.
type Set struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	keys   atomic.Pointer[map[string]jose.JSONWebKey] // last good set, by kid
	goodAt atomic.Int64                               // Unix nanoseconds of the last good fetch

	mu      sync.Mutex // guards the following; held during a fetch
	lastTry time.Time
	lastErr error
	jwksURL string // from discovery; cleared when a fetch fails
}

// New returns a Set for cfg. It does no network I/O: the set is fetched
// on first use or by [Set.Refresh].
func New(cfg Config) *Set {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = 30 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = time.Hour
	}
	s := &Set{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger}
	if s.client == nil {
		s.client = &http.Client{Timeout: cfg.FetchTimeout}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// For reports whether s was made for this issuer, URL and file.
func (s *Set) For(issuer, url, file string) bool {
	return s.cfg.Issuer == issuer && s.cfg.URL == url && s.cfg.File == file
}

// Loaded reports whether a fetch has succeeded (the last good set is kept
// when later fetches fail).
func (s *Set) Loaded() bool { return s.keys.Load() != nil }

// Key returns the key kid, fetching the set first when kid is unknown or
// the set is stale (at most once per RefetchInterval). Errors:
// [ErrUnavailable] before any fetch succeeded, else [ErrUnknownKey].
func (s *Set) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if m := s.keys.Load(); m != nil {
		if k, ok := (*m)[kid]; ok && !s.stale() {
			return k, nil
		}
	}
	fetchErr := s.refreshIfAllowed(ctx)
	m := s.keys.Load()
	if m == nil {
		if fetchErr == nil {
			return jose.JSONWebKey{}, ErrUnavailable
		}
		return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrUnavailable, fetchErr)
	}
	if k, ok := (*m)[kid]; ok {
		return k, nil
	}
	return jose.JSONWebKey{}, ErrUnknownKey
}

// Refresh fetches the set now, whatever the refetch interval. On failure
// the last good set stays in use.
func (s *Set) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastTry = s.cfg.Now()
	return s.fetchLocked(ctx)
}

func (s *Set) stale() bool {
	return s.cfg.Now().Sub(time.Unix(0, s.goodAt.Load())) > s.cfg.MaxAge
}

// refreshIfAllowed fetches the set unless a fetch was tried within
// RefetchInterval, and returns the latest fetch's error. A lookup's
// caller sees that error only while no set was ever fetched, so a failure
// is logged here: the last good set stays in use.
func (s *Set) refreshIfAllowed(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if !s.lastTry.IsZero() && now.Sub(s.lastTry) < s.cfg.RefetchInterval {
		return s.lastErr
	}
	s.lastTry = now
	err := s.fetchLocked(ctx)
	if err != nil {
		where := slog.String("jwks_url", s.cfg.URL)
		switch {
		case s.cfg.URL == "" && s.cfg.File != "":
			where = slog.String("jwks_file", s.cfg.File)
		case s.cfg.URL == "":
			where = slog.String("issuer", s.cfg.Issuer)
		}
		s.log.Warn("jwks_fetch_failed", where, slog.String("error", err.Error()))
	}
	return err
}

// fetchLocked fetches the set and records the outcome.
func (s *Set) fetchLocked(ctx context.Context) error {
	err := s.fetchOnceLocked(ctx)
	s.lastErr = err
	if err != nil {
		s.jwksURL = "" // discover again next time: the document may have moved
	}
	return err
}

// fetchOnceLocked discovers the JWKS URL if needed and fetches the set.
func (s *Set) fetchOnceLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	if s.cfg.URL == "" && s.cfg.File != "" {
		return s.readFileLocked()
	}
	url := s.cfg.URL
	if url == "" {
		if s.jwksURL == "" {
			var err error
			if s.jwksURL, err = s.discover(ctx); err != nil {
				return err
			}
		}
		url = s.jwksURL
	}
	data, err := s.getJSON(ctx, url)
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	keys, err := Parse(data, s.cfg.Accept)
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	s.keys.Store(&keys)
	s.goodAt.Store(s.cfg.Now().UnixNano())
	return nil
}

// readFileLocked reads the set from File.
func (s *Set) readFileLocked() error {
	f, err := os.Open(s.cfg.File)
	if err != nil {
		return fmt.Errorf("read jwks file: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("read jwks file %s: %w", s.cfg.File, err)
	case len(data) > MaxBytes:
		return fmt.Errorf("read jwks file %s: larger than %d bytes", s.cfg.File, MaxBytes)
	}
	keys, err := Parse(data, s.cfg.Accept)
	if err != nil {
		return fmt.Errorf("read jwks file %s: %w", s.cfg.File, err)
	}
	s.keys.Store(&keys)
	s.goodAt.Store(s.cfg.Now().UnixNano())
	return nil
}

// discover returns the jwks_uri of the issuer's discovery document, which
// must name the issuer exactly.
func (s *Set) discover(ctx context.Context) (string, error) {
	issuer := s.cfg.Issuer
	data, err := s.getJSON(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
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

// getJSON fetches a JSON document of at most MaxBytes.
func (s *Set) getJSON(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("document larger than %d bytes", MaxBytes)
	}
	return data, nil
}

// Parse returns the keys of a JWKS document by kid that have a kid, are
// for signing (use "sig" or none) and that accept keeps (nil keeps all).
// A document with none left is an [ErrBadKeySet] error.
func Parse(data []byte, accept func(jose.JSONWebKey) bool) (map[string]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%w: not a JWKS document", ErrBadKeySet)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || (accept != nil && !accept(k)) {
			continue
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no signing key with a kid that is accepted here", ErrBadKeySet)
	}
	return keys, nil
}
