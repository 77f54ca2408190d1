package appreq

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/session"
)

// Fixed values of the wire format.
const (
	// Type is the JOSE typ header of a signed app request.
	Type = "postern-appreq+jwt"
	// Param is the query parameter that carries a signed app request to
	// the auth functions' /authorize and /logout.
	Param = "req"
	// MaxSize caps the length of a signed app request that verification
	// looks at (a browser and API Gateway both take URLs well past it).
	MaxSize = 8 << 10
	// DefaultLifetime is a request's validity when SignerConfig.Lifetime
	// is zero: the browser follows the redirect at once.
	DefaultLifetime = 2 * time.Minute
	// MaxLifetime is the longest validity a verifier accepts (exp - iat).
	MaxLifetime = 5 * time.Minute
	// DefaultSkew is the clock skew tolerated when VerifierConfig.Skew is
	// zero.
	DefaultSkew = 30 * time.Second
	// MaxAppLifetime bounds an app token lifetime a request may ask for.
	MaxAppLifetime = 31 * 24 * time.Hour
	// MinCLIPort is the lowest loopback port a command-line client may
	// listen on (below it are privileged ports, which a client run by a
	// user does not get); the highest is 65535.
	MinCLIPort = 1024
)

// Request is what the auth functions need to know about an app to sign a
// user in to it. The edge fills in the app's part; [Signer.Sign] the rest.
// Durations are whole seconds.
type Request struct {
	// AppID is the app's catalogue id.
	AppID string `json:"app"`
	// Host is the app's external host: the app token's audience and where
	// the browser returns to.
	Host string `json:"host"`
	// ReturnPath is the path (and query) on Host to return to; empty in a
	// sign-out request.
	ReturnPath string `json:"rd,omitempty"`
	// Binding is the base64url SHA-256 of the browser's bind nonce; empty
	// in a sign-out request.
	Binding string `json:"b,omitempty"`
	// Fresh asks for a new sign-in at the provider, ignoring the global
	// session (the mesh refused the browser's session as revoked).
	Fresh bool `json:"fresh,omitempty"`
	// CLIPort, in the sign-in of a command-line client (connectord
	// access), is the loopback port (MinCLIPort-65535) the client listens
	// on: the auth functions mint an app token marked CLI, bound to
	// Binding (the hash of a nonce only the client holds), and hand it to
	// http://127.0.0.1:CLIPort/callback after the user confirms. Zero
	// means a browser's sign-in. A command-line request needs a Binding
	// and a ReturnPath.
	CLIPort int `json:"cli,omitempty"`
	// Groups and Roles are those the app's policy names: the app token
	// carries only these.
	Groups []string `json:"grp,omitempty"`
	Roles  []string `json:"rol,omitempty"`
	// ACRs are the authentication contexts required for ReturnPath: the
	// app's own and those of the path rule that covers it (step-up).
	ACRs []string `json:"acrs,omitempty"`
	// MaxAge is the longest time since the user authenticated at the
	// provider, in seconds; zero means no limit.
	MaxAge int64 `json:"max_age,omitempty"`
	// Lifetime is the app token's lifetime in seconds (> 0).
	Lifetime int64 `json:"ttl"`
	// Tenants are the Entra tenants whose users' groups and roles the
	// app's policy counts ("" stands for users without a tenant, of
	// providers other than Entra); a user of another tenant gets a token
	// without groups and roles. Empty means any user's count.
	Tenants []string `json:"ten,omitempty"`
	// SessionFilter names, compactly, every group and role that any policy
	// of the mesh's catalogue names (see [NewFilter]): the global session
	// keeps only those.
	SessionFilter string `json:"sf,omitempty"`
	// NoticeLifetime is the longest app token lifetime of the catalogue,
	// in seconds: a sign-out notice must outlive every app token of the
	// session.
	NoticeLifetime int64 `json:"mlt,omitempty"`

	// Node is the id of the signing mesh node (iss).
	Node string `json:"iss"`
	// Audience is the auth functions' base URL (aud).
	Audience string `json:"aud"`
	// IssuedAt and Expiry bound the request (Unix seconds).
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// Credential is the node's node credential, base64url.
	Credential string `json:"nc"`
}

// MaxAgeDuration returns MaxAge as a duration.
func (r *Request) MaxAgeDuration() time.Duration { return time.Duration(r.MaxAge) * time.Second }

// LifetimeDuration returns Lifetime as a duration.
func (r *Request) LifetimeDuration() time.Duration { return time.Duration(r.Lifetime) * time.Second }

// NoticeLifetimeDuration returns NoticeLifetime as a duration, at least
// the app's own Lifetime.
func (r *Request) NoticeLifetimeDuration() time.Duration {
	return time.Duration(max(r.NoticeLifetime, r.Lifetime)) * time.Second
}

// header is the only protected header a request may have, byte for byte.
var header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"` + Type + `"}`))

// SignerConfig configures a [Signer].
type SignerConfig struct {
	// Credential is the node's node credential (required).
	Credential nodecred.Credential
	// Sign signs with the node key the credential names (required);
	// authority.Key's Sign method.
	Sign func(msg []byte) []byte
	// Audience is the auth functions' base URL, such as
	// https://auth.example.com (required).
	Audience string
	// Lifetime is each request's validity; zero means DefaultLifetime. At
	// most MaxLifetime.
	Lifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Signer signs app requests as one mesh node. It is safe for concurrent
// use.
type Signer struct {
	cfg SignerConfig
	nc  string
}

// NewSigner checks cfg and returns a Signer.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	switch {
	case cfg.Credential.IsZero() || cfg.Sign == nil:
		return nil, fmt.Errorf("appreq: new signer: a node credential and its node key are required")
	case cfg.Audience == "":
		return nil, fmt.Errorf("appreq: new signer: the auth functions' URL is required")
	case cfg.Lifetime < 0 || cfg.Lifetime > MaxLifetime:
		return nil, fmt.Errorf("appreq: new signer: lifetime %v out of range (0, %v]", cfg.Lifetime, MaxLifetime)
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Audience = strings.TrimSuffix(cfg.Audience, "/")
	return &Signer{cfg: cfg, nc: cfg.Credential.String()}, nil
}

// Sign fills in r's node, audience, times and credential, and returns it
// as a compact JWS.
func (s *Signer) Sign(r Request) (string, error) {
	now := s.cfg.Now()
	r.Node, r.Audience, r.Credential = s.cfg.Credential.NodeID, s.cfg.Audience, s.nc
	r.IssuedAt, r.Expiry = now.Unix(), now.Add(s.cfg.Lifetime).Unix()
	if err := r.check(); err != nil {
		return "", fmt.Errorf("appreq: sign: %w", err)
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("appreq: sign: %w", err)
	}
	input := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(s.cfg.Sign([]byte(input))), nil
}

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	// AuthorityKeys are the mesh authority's public keys (required; more
	// than one during a rotation).
	AuthorityKeys []ed25519.PublicKey
	// Audience is this auth service's base URL; requests for any other are
	// refused (required).
	Audience string
	// Skew is the clock skew tolerated; zero means DefaultSkew.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks signed app requests. It is safe for concurrent use.
type Verifier struct {
	nodes *nodecred.Verifier
	cfg   VerifierConfig
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Audience == "" {
		return nil, fmt.Errorf("appreq: new verifier: audience is required")
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Audience = strings.TrimSuffix(cfg.Audience, "/")
	nodes, err := nodecred.NewVerifier(cfg.AuthorityKeys, cfg.Now, cfg.Skew)
	if err != nil {
		return nil, fmt.Errorf("appreq: new verifier: %w", err)
	}
	return &Verifier{nodes: nodes, cfg: cfg}, nil
}

// Verify checks tok: its header, the node credential it carries against
// the authority keys, the signature against the credential's node key,
// the issuer against the credential, the audience, the validity window
// and every field. It is safe to call on untrusted input of any size.
func (v *Verifier) Verify(tok string) (*Request, error) {
	if len(tok) > MaxSize {
		return nil, fmt.Errorf("appreq: verify: %d bytes, over %d: %w", len(tok), MaxSize, ErrMalformed)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != header {
		return nil, fmt.Errorf("appreq: verify: not an EdDSA %s compact JWS: %w", Type, ErrMalformed)
	}
	payload, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	sig, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("appreq: verify: encoding: %w", ErrMalformed)
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&r); err != nil || dec.More() {
		return nil, fmt.Errorf("appreq: verify: claims: %w", ErrMalformed)
	}
	raw, err := nodecred.Decode(r.Credential)
	if err != nil {
		return nil, fmt.Errorf("appreq: verify: %w: %w", ErrCredential, err)
	}
	cred, err := v.nodes.Verify(raw)
	if err != nil {
		return nil, fmt.Errorf("appreq: verify: %w: %w", ErrCredential, err)
	}
	if !ed25519.Verify(cred.NodeKey, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, fmt.Errorf("appreq: verify: node %s: %w", cred.NodeID, ErrSignature)
	}
	if r.Node != cred.NodeID {
		return nil, fmt.Errorf("appreq: verify: iss %.64q is not the credential's node %s: %w", r.Node, cred.NodeID, ErrSignature)
	}
	if strings.TrimSuffix(r.Audience, "/") != v.cfg.Audience {
		return nil, fmt.Errorf("appreq: verify: aud %.80q: %w", r.Audience, ErrAudience)
	}
	now := v.cfg.Now()
	iat, exp := time.Unix(r.IssuedAt, 0), time.Unix(r.Expiry, 0)
	switch {
	case r.IssuedAt <= 0 || !exp.After(iat) || exp.Sub(iat) > MaxLifetime:
		return nil, fmt.Errorf("appreq: verify: valid from %d to %d, want at most %v: %w", r.IssuedAt, r.Expiry, MaxLifetime, ErrExpired)
	case now.Add(v.cfg.Skew).Before(iat):
		return nil, fmt.Errorf("appreq: verify: issued %s, in the future: %w", iat.UTC().Format(time.RFC3339), ErrExpired)
	case !now.Add(-v.cfg.Skew).Before(exp):
		return nil, fmt.Errorf("appreq: verify: expired at %s: %w", exp.UTC().Format(time.RFC3339), ErrExpired)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("appreq: verify: %w", err)
	}
	return &r, nil
}

// Limits on a request's fields.
const (
	maxNames   = 512 // groups, roles
	maxNameLen = 256
	maxACRs    = 32
	maxTenants = 64
)

var (
	appIDRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hostRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	acrRE    = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	tenantRE = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z.-]{0,127}$`)
)

// check validates every field; errors wrap ErrMalformed.
func (r *Request) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	switch {
	case !appIDRE.MatchString(r.AppID):
		return bad("app id %.64q", r.AppID)
	case len(r.Host) > 253 || !hostRE.MatchString(r.Host):
		return bad("host %.64q is not a lower-case DNS name", r.Host)
	case r.Lifetime <= 0 || r.LifetimeDuration() > MaxAppLifetime:
		return bad("ttl %d out of range", r.Lifetime)
	case r.MaxAge < 0 || r.NoticeLifetime < 0 || r.NoticeLifetimeDuration() > MaxAppLifetime:
		return bad("max_age or mlt out of range")
	case len(r.Groups) > maxNames || len(r.Roles) > maxNames || len(r.ACRs) > maxACRs || len(r.Tenants) > maxTenants:
		return bad("too many groups, roles, acrs or tenants")
	case r.CLIPort != 0 && !ValidCLIPort(r.CLIPort):
		return bad("cli %d is not a loopback port %d-65535", r.CLIPort, MinCLIPort)
	case r.CLIPort != 0 && (r.Binding == "" || r.ReturnPath == ""):
		return bad("a command-line sign-in request needs a binding and a return path")
	}
	if r.ReturnPath != "" {
		rd, err := session.ValidReturnPath(r.ReturnPath)
		if err != nil || rd != r.ReturnPath {
			return bad("rd is not a canonical path on the app's host")
		}
	}
	if r.Binding != "" && !ValidBinding(r.Binding) {
		return bad("b must be the 43-character base64url SHA-256 of the bind nonce")
	}
	for _, list := range [][]string{r.Groups, r.Roles} {
		for _, n := range list {
			if n == "" || len(n) > maxNameLen || strings.IndexFunc(n, notPrintable) >= 0 {
				return bad("group or role %.64q", n)
			}
		}
	}
	for _, a := range r.ACRs {
		if !acrRE.MatchString(a) {
			return bad("acr %.64q", a)
		}
	}
	for _, t := range r.Tenants {
		if t != "" && !tenantRE.MatchString(t) {
			return bad("tenant %.64q", t)
		}
	}
	if _, err := ParseFilter(r.SessionFilter); err != nil {
		return err
	}
	return nil
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// ValidCLIPort reports whether port may be a command-line client's
// loopback port.
func ValidCLIPort(port int) bool { return port >= MinCLIPort && port <= 65535 }

// ValidBinding reports whether b is an unpadded base64url SHA-256.
func ValidBinding(b string) bool {
	if len(b) != 43 {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b)
	return err == nil && len(raw) == 32
}
