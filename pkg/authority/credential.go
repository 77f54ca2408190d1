package authority

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/postern/postern/pkg/wgkey"
)

// Credential describes a verified (or just issued) connector credential: a
// signed statement that the connector with this id, in this group, owns
// this WireGuard public key until Expires.
type Credential struct {
	// ConnectorID is the credential's sub.
	ConnectorID string
	// Group is the connector group (grp).
	Group string
	// PublicKey is the connector's WireGuard public key (wgk); its tunnel
	// address is PublicKey.Addr().
	PublicKey wgkey.Public
	// IssuedAt, NotBefore and Expires are the credential's iat, nbf and exp.
	IssuedAt, NotBefore, Expires time.Time
	// KeyID is the kid of the key that signed the credential.
	KeyID string
	// WorkloadSubject is the sub of the workload identity token the
	// connector enrolled with (a Kubernetes ServiceAccount), empty for a
	// connector enrolled with a one-time token; renewals keep it, and the
	// mesh checks that the group still accepts it.
	WorkloadSubject string
}

// LogValue logs the credential's public facts.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("connector", c.ConnectorID),
		slog.String("group", c.Group),
		slog.String("public_key", c.PublicKey.Short()),
		slog.Time("expires", c.Expires),
	)
}

// connectorIDRE is what a connector id may look like.
var connectorIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// IssueCredential returns a new credential for connector id in group with
// WireGuard key pub, valid from now for ttl (0 < ttl ≤ MaxCredentialTTL).
func (a *Authority) IssueCredential(id, group string, pub wgkey.Public, ttl time.Duration) (string, Credential, error) {
	return a.issueCredential(id, group, pub, ttl, "")
}

// MaxWorkloadSubjectLen bounds a credential's workload subject in bytes.
const MaxWorkloadSubjectLen = 512

// IssueWorkloadCredential is IssueCredential for a connector enrolled with
// a workload identity token of subject sub (non-empty, printable, at most
// MaxWorkloadSubjectLen bytes), which the credential names.
func (a *Authority) IssueWorkloadCredential(id, group string, pub wgkey.Public, ttl time.Duration, sub string) (string, Credential, error) {
	if sub == "" || len(sub) > MaxWorkloadSubjectLen || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", Credential{}, fmt.Errorf("authority: issue credential: workload subject %.80q is not valid: %w", sub, ErrInvalidArgument)
	}
	return a.issueCredential(id, group, pub, ttl, sub)
}

func (a *Authority) issueCredential(id, group string, pub wgkey.Public, ttl time.Duration, sub string) (string, Credential, error) {
	switch {
	case !connectorIDRE.MatchString(id):
		return "", Credential{}, fmt.Errorf("authority: issue credential: connector id %.80q is not valid: %w", id, ErrInvalidArgument)
	case !ValidGroup(group):
		return "", Credential{}, fmt.Errorf("authority: issue credential: group %.80q is not a valid group id: %w", group, ErrInvalidArgument)
	case pub.IsZero():
		return "", Credential{}, fmt.Errorf("authority: issue credential: zero public key: %w", ErrInvalidArgument)
	case ttl <= 0 || ttl > MaxCredentialTTL:
		return "", Credential{}, fmt.Errorf("authority: issue credential: ttl %v out of range (0, %v]: %w", ttl, MaxCredentialTTL, ErrInvalidArgument)
	}
	now := a.now().Truncate(time.Second)
	c := claims{
		Subject:   id,
		Group:     group,
		WGKey:     pub.String(),
		Workload:  sub,
		Issuer:    Issuer,
		Audience:  jwt.Audience{CredentialAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := sign(a.credSign, c)
	if err != nil {
		return "", Credential{}, fmt.Errorf("authority: issue credential: %w", err)
	}
	return s, credential(c, pub, a.kid), nil
}

// VerifyCredential checks a credential strictly (EdDSA by a known key, typ,
// aud, iss, times within the skew, sub, grp and wgk well-formed) and
// describes it.
func (a *Authority) VerifyCredential(s string) (Credential, error) {
	c, kid, err := a.verify(s, credKind)
	if err != nil {
		return Credential{}, fmt.Errorf("authority: verify credential: %w", err)
	}
	if !connectorIDRE.MatchString(c.Subject) || !ValidGroup(c.Group) {
		return Credential{}, fmt.Errorf("authority: verify credential: sub or grp ill-formed: %w", ErrMalformed)
	}
	pub, err := wgkey.ParsePublic(c.WGKey)
	if err != nil {
		return Credential{}, fmt.Errorf("authority: verify credential: wgk: %w", ErrMalformed)
	}
	return credential(c, pub, kid), nil
}

func credential(c claims, pub wgkey.Public, kid string) Credential {
	return Credential{
		ConnectorID: c.Subject,
		Group:       c.Group,
		PublicKey:   pub,
		IssuedAt:    c.IssuedAt.Time(),
		NotBefore:   c.NotBefore.Time(),
		Expires:     c.Expiry.Time(),
		KeyID:       kid,
		// The workload subject, empty for a one-time token's credential.
		WorkloadSubject: c.Workload,
	}
}

// maxNameLen is the longest sanitised name part of a connector id.
const maxNameLen = 40

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ConnectorID derives a connector's id from the name its operator chose and
// its WireGuard public key: the name lowercased with every run of other
// characters than [a-z0-9] turned into one '-', trimmed of '-', cut to 40
// characters ("connector" when nothing is left), then '-' and the first 8
// characters of the lowercase unpadded base32 SHA-256 of the key. The same
// key and name always give the same id.
func ConnectorID(name string, pub wgkey.Public) string {
	sum := sha256.Sum256(pub[:])
	return sanitizeName(name) + "-" + strings.ToLower(idEncoding.EncodeToString(sum[:]))[:8]
}

func sanitizeName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > maxNameLen {
		s = strings.TrimRight(s[:maxNameLen], "-")
	}
	if s == "" {
		return "connector"
	}
	return s
}
