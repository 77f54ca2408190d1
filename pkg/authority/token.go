package authority

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenInfo describes a verified (or just minted) enrolment token. It holds
// no secret: the token string is the secret.
type TokenInfo struct {
	// ID is the token's jti, the id that UsedTokens burns.
	ID string
	// Group is the connector group the token enrols into.
	Group string
	// IssuedAt, NotBefore and Expires are the token's iat, nbf and exp.
	IssuedAt, NotBefore, Expires time.Time
	// KeyID is the kid of the key that signed the token.
	KeyID string
}

// groupRE is what a connector group id may look like.
var groupRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidGroup reports whether s is a well-formed connector group id: 1 to 64
// characters of letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidGroup(s string) bool { return groupRE.MatchString(s) }

// MintEnrollToken returns a new single-use enrolment token for group, valid
// from now for ttl (0 < ttl ≤ MaxEnrollTTL; DefaultEnrollTTL is a good
// choice), and its description.
func (a *Authority) MintEnrollToken(group string, ttl time.Duration) (string, TokenInfo, error) {
	if !ValidGroup(group) {
		return "", TokenInfo{}, fmt.Errorf("authority: mint enrolment token: group %.80q is not a valid group id: %w", group, ErrInvalidArgument)
	}
	if ttl <= 0 || ttl > MaxEnrollTTL {
		return "", TokenInfo{}, fmt.Errorf("authority: mint enrolment token: ttl %v out of range (0, %v]: %w", ttl, MaxEnrollTTL, ErrInvalidArgument)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", TokenInfo{}, fmt.Errorf("authority: mint enrolment token: %w", err)
	}
	now := a.now().Truncate(time.Second)
	c := claims{
		ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		Group:     group,
		Issuer:    Issuer,
		Audience:  jwt.Audience{EnrollAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(ttl)),
	}
	tok, err := sign(a.enrollSign, c)
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("authority: mint enrolment token: %w", err)
	}
	return tok, tokenInfo(c, a.kid), nil
}

// VerifyEnrollToken checks token strictly (EdDSA by a known key, typ, aud,
// iss, times within the skew, jti and grp present) and describes it. It does
// not check or mark single use; that is UsedTokens' job.
func (a *Authority) VerifyEnrollToken(token string) (TokenInfo, error) {
	c, kid, err := a.verify(token, enrollKind)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("authority: verify enrolment token: %w", err)
	}
	if c.ID == "" || len(c.ID) > 64 {
		return TokenInfo{}, fmt.Errorf("authority: verify enrolment token: jti missing or too long: %w", ErrMalformed)
	}
	if !ValidGroup(c.Group) {
		return TokenInfo{}, fmt.Errorf("authority: verify enrolment token: grp is not a valid group id: %w", ErrMalformed)
	}
	return tokenInfo(c, kid), nil
}

func tokenInfo(c claims, kid string) TokenInfo {
	return TokenInfo{
		ID:        c.ID,
		Group:     c.Group,
		IssuedAt:  c.IssuedAt.Time(),
		NotBefore: c.NotBefore.Time(),
		Expires:   c.Expiry.Time(),
		KeyID:     kid,
	}
}
