package bearer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/jwks"
	"github.com/postern/postern/pkg/session"
)

// DefaultSkew is the clock skew allowed on exp, nbf and iat: small and
// explicit, as for Postern's own tokens.
const DefaultSkew = session.DefaultSkew

// MaxTokenBytes bounds the length of a bearer token; longer ones are
// refused unparsed.
const MaxTokenBytes = 16 << 10

// maxWorkloadClaims bounds how many string claims of a workload token are
// kept for policy conditions.
const maxWorkloadClaims = 64

// algorithms are the signature algorithms accepted: asymmetric only.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Config configures a [Verifier].
type Config struct {
	// HTTPClient fetches discovery documents and key sets; nil means a
	// client with FetchTimeout and the system roots.
	HTTPClient *http.Client
	// Skew is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultSkew.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FetchTimeout bounds one discovery and key-set fetch; zero means 5s.
	FetchTimeout time.Duration
	// RefetchInterval is the least time between two fetches of one
	// issuer's keys that an unknown kid (or a failed fetch) triggers;
	// zero means 30s.
	RefetchInterval time.Duration
	// MaxAge is how long a fetched key set is used before it is fetched
	// again on the next verification; zero means 1h.
	MaxAge time.Duration
	// CacheSize bounds the verified tokens remembered; zero means 100000.
	CacheSize int
	// Logger receives key-fetch failures; nil discards.
	Logger *slog.Logger
}

// Verifier verifies bearer tokens for the apps of a catalogue. It is safe
// for concurrent use.
type Verifier struct {
	cfg   Config
	log   *slog.Logger
	cache *cache

	mu      sync.Mutex // guards the following
	keySets map[string]*jwks.Set
}

// New returns a Verifier. It does no network I/O: key sets are fetched on
// first use.
func New(cfg Config) *Verifier {
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100_000
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, keySets: map[string]*jwks.Set{}}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.cache = newCache(cfg.CacheSize)
	return v
}

// Verify returns the identity of token for app of catalogue cat, from the
// cache when the token was verified for this very app (the same
// catalogue entry) and has not expired, otherwise by verifying it. The
// identity is shared: callers must not modify it.
func (v *Verifier) Verify(ctx context.Context, token string, cat *catalog.Catalog, app *catalog.App) (*session.Identity, error) {
	if !app.Bearer.Accepts() {
		return nil, ErrNotAccepted
	}
	if id, ok, err := v.Cached(token, app); ok {
		return id, err
	}
	id, exp, err := v.verify(ctx, token, cat, app)
	if err != nil {
		return nil, err
	}
	v.cache.put(token, app, id, exp)
	return id, nil
}

// Cached returns the identity of token if it was verified for app (the
// same catalogue entry) and is remembered: the hot path, a map lookup and
// a clock read. ok is false when the token is not remembered; err is
// ErrExpired when it was but has expired since.
func (v *Verifier) Cached(token string, app *catalog.App) (id *session.Identity, ok bool, err error) {
	id, exp, ok := v.cache.get(token, app)
	if !ok {
		return nil, false, nil
	}
	if v.cfg.Now().Unix() >= exp+int64(v.cfg.Skew/time.Second) {
		v.cache.remove(token)
		return nil, true, ErrExpired
	}
	return id, true, nil
}

// claims is a token's payload, decoded loosely: each check reads what it
// needs and a wrong type is a malformed token.
type claims map[string]json.RawMessage

func (c claims) str(name string) (string, error) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, name)
	}
	return s, nil
}

func (c claims) num(name string) (int64, error) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	return int64(f), nil
}

// list reads a claim that is a string list (or one string).
func (c claims) list(name string) ([]string, error) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	return nil, fmt.Errorf("%w: %s is not a string list", ErrMalformed, name)
}

// parse parses token as a compact JWS with one signature of an accepted
// algorithm and a JSON object of claims, and returns its iss; nothing is
// verified yet.
func parse(token string) (*jose.JSONWebSignature, claims, string, error) {
	if len(token) > MaxTokenBytes {
		return nil, nil, "", fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(token, algorithms)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, nil, "", fmt.Errorf("%w: only asymmetric signatures are accepted", ErrAlgorithm)
		}
		return nil, nil, "", fmt.Errorf("%w: not a signed JWT", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, "", fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	var c claims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return nil, nil, "", fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	iss, err := c.str("iss")
	if err != nil {
		return nil, nil, "", err
	}
	return jws, c, iss, nil
}

// verify checks token from scratch and returns its identity and exp.
func (v *Verifier) verify(ctx context.Context, token string, cat *catalog.Catalog, app *catalog.App) (*session.Identity, int64, error) {
	jws, c, iss, err := parse(token)
	if err != nil {
		return nil, 0, err
	}
	if wb, ok := app.Bearer.WorkloadByURL(iss); ok {
		return v.verifyWorkload(ctx, jws, c, wb)
	}
	if eb := app.Bearer.Entra; eb != nil {
		e := cat.Entra()
		if strings.HasPrefix(iss, e.Authority+"/") || strings.HasPrefix(iss, e.V1Issuer+"/") {
			return v.entra(ctx, jws, c, e, eb)
		}
	}
	return nil, 0, ErrUnknownIssuer
}

// VerifyWorkload verifies token as a token of wb's issuer for one of its
// audiences (signature by a key of the issuer's key set, an asymmetric
// algorithm, exp required and not past, nbf and iat not in the future,
// a sub) and returns its identity (Claims holds its string claims, sub
// among them) and expiry. It is the check of an app's trusted workload
// issuers (Verify) without an app: the mesh's enrolment by workload
// identity (a connector group's workload_enrollment) uses it. Nothing is
// cached. A token of another issuer is ErrUnknownIssuer.
func (v *Verifier) VerifyWorkload(ctx context.Context, token string, wb *catalog.WorkloadBearer) (*session.Identity, time.Time, error) {
	jws, c, iss, err := parse(token)
	if err != nil {
		return nil, time.Time{}, err
	}
	if iss != wb.Issuer.URL {
		return nil, time.Time{}, ErrUnknownIssuer
	}
	id, exp, err := v.verifyWorkload(ctx, jws, c, wb)
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, time.Unix(exp, 0), nil
}

// verifyWorkload checks the signature of a token of wb's issuer and its
// claims.
func (v *Verifier) verifyWorkload(ctx context.Context, jws *jose.JSONWebSignature, c claims, wb *catalog.WorkloadBearer) (*session.Identity, int64, error) {
	ks := v.keySetFor("wif:"+wb.Issuer.ID, wb.Issuer.URL, wb.Issuer.JWKSURL, wb.Issuer.JWKSFile)
	if err := v.checkSignature(ctx, jws, ks); err != nil {
		return nil, 0, err
	}
	return v.workload(c, wb)
}

// checkSignature verifies the token's signature with the key its kid
// names in ks; the key must allow the token's algorithm.
func (v *Verifier) checkSignature(ctx context.Context, jws *jose.JSONWebSignature, ks *jwks.Set) error {
	h := jws.Signatures[0].Header
	if h.KeyID == "" {
		return fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	jwk, err := key(ctx, ks, h.KeyID)
	if err != nil {
		return err
	}
	if jwk.Algorithm != "" && jwk.Algorithm != h.Algorithm {
		return fmt.Errorf("%w: the key is for %s", ErrAlgorithm, jwk.Algorithm)
	}
	if _, err := jws.Verify(jwk.Key); err != nil {
		return ErrBadSignature
	}
	return nil
}

// checkTimes checks exp (required), nbf and iat with the skew.
func (v *Verifier) checkTimes(c claims) (int64, error) {
	exp, err := c.num("exp")
	if err != nil {
		return 0, err
	}
	nbf, err := c.num("nbf")
	if err != nil {
		return 0, err
	}
	iat, err := c.num("iat")
	if err != nil {
		return 0, err
	}
	now := v.cfg.Now().Unix()
	skew := int64(v.cfg.Skew / time.Second)
	switch {
	case exp <= 0:
		return 0, fmt.Errorf("%w: exp is required", ErrMalformed)
	case now >= exp+skew:
		return 0, ErrExpired
	case nbf > now+skew:
		return 0, ErrNotYetValid
	case iat > now+skew:
		return 0, fmt.Errorf("%w: issued in the future", ErrNotYetValid)
	}
	return exp, nil
}

// audiences reads aud, a string or a list of strings.
func audiences(c claims) ([]string, error) {
	aud, err := c.list("aud")
	if err != nil {
		return nil, err
	}
	if len(aud) == 0 {
		return nil, fmt.Errorf("%w: aud is required", ErrMalformed)
	}
	return aud, nil
}

// workload builds the identity of a verified token of a trusted issuer.
func (v *Verifier) workload(c claims, wb *catalog.WorkloadBearer) (*session.Identity, int64, error) {
	exp, err := v.checkTimes(c)
	if err != nil {
		return nil, 0, err
	}
	aud, err := audiences(c)
	if err != nil {
		return nil, 0, err
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(wb.Audiences, a) }) {
		return nil, 0, ErrWrongAudience
	}
	sub, err := c.str("sub")
	if err != nil {
		return nil, 0, err
	}
	if sub == "" {
		return nil, 0, fmt.Errorf("%w: sub is required", ErrMalformed)
	}
	id := &session.Identity{
		Subject: session.WorkloadPrefix + wb.Issuer.ID + "/" + sub,
		Type:    session.PrincipalWorkload,
		Issuer:  wb.Issuer.ID,
		Claims:  make(map[string]string, len(c)),
	}
	for k, raw := range c {
		var s string
		if len(id.Claims) < maxWorkloadClaims && json.Unmarshal(raw, &s) == nil {
			id.Claims[k] = s
		}
	}
	return id, exp, nil
}
