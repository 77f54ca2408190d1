package authfn

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// idClaims are the ID token claims the service reads, beyond those go-oidc
// checks.
type idClaims struct {
	raw map[string]json.RawMessage

	Issuer  string
	Subject string
	Nonce   string
	// AuthorizedParty is azp; empty when absent.
	AuthorizedParty string
	IssuedAt        int64
	AuthTime        int64
	// Entra
	TenantID string
	ObjectID string
	// Profile
	Name     string
	Username string
	Email    string
	Groups   []string
	Roles    []string
	ACRs     []string
	// Overage is true when the groups claim was replaced by a pointer to
	// Graph (_claim_names.groups, or hasgroups).
	Overage bool
	// NoGroupsClaim is true when the token has no groups claim at all
	// (not even an empty list): a generic provider that was not asked
	// for its groups scope sends none.
	NoGroupsClaim bool
}

// parseClaims decodes the verified ID token payload, reading the user id,
// name, groups and roles through m (Entra mode passes the Entra names).
func parseClaims(payload []byte, mode string, m ClaimMapping) (*idClaims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("%w: claims are not a JSON object", ErrIDToken)
	}
	c := &idClaims{raw: raw}
	var errs []string
	str := func(name string) string {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return ""
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			errs = append(errs, name+" is not a string")
		}
		return s
	}
	num := func(name string) int64 {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return 0
		}
		var f float64
		if json.Unmarshal(v, &f) != nil {
			errs = append(errs, name+" is not a number")
		}
		return int64(f)
	}
	list := func(name string) []string {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		var l []string
		if json.Unmarshal(v, &l) == nil {
			return l
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			return strings.Fields(s)
		}
		errs = append(errs, name+" is not a string list")
		return nil
	}
	c.Issuer, c.Subject, c.Nonce, c.AuthorizedParty = str("iss"), str("sub"), str("nonce"), str("azp")
	c.IssuedAt, c.AuthTime = num("iat"), num("auth_time")
	c.Username, c.Email = str("preferred_username"), str("email")
	c.ACRs = list("acrs")
	if mode == ModeEntra {
		c.TenantID, c.ObjectID = str("tid"), str("oid")
		c.Name, c.Groups, c.Roles = str("name"), list("groups"), list("roles")
	} else {
		c.ObjectID = str(m.UserID)
		c.Name, c.Groups, c.Roles = str(m.Name), list(m.Groups), list(m.Roles)
		if acr := str("acr"); acr != "" && !slices.Contains(c.ACRs, acr) {
			c.ACRs = append(c.ACRs, acr)
		}
	}
	c.Overage = hasOverage(raw, groupsClaim(mode, m))
	_, hasGroups := raw[groupsClaim(mode, m)]
	c.NoGroupsClaim = !hasGroups && !c.Overage
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrIDToken, strings.Join(errs, "; "))
	}
	return c, nil
}

func groupsClaim(mode string, m ClaimMapping) string {
	if mode == ModeEntra {
		return "groups"
	}
	return m.Groups
}

// hasOverage reports whether the provider left out the groups claim because
// the user is in too many groups: Entra then names it in _claim_names (or
// sets hasgroups in the implicit flow).
func hasOverage(raw map[string]json.RawMessage, groups string) bool {
	if _, ok := raw[groups]; ok {
		return false
	}
	if v, ok := raw["hasgroups"]; ok && string(v) == "true" {
		return true
	}
	var names map[string]json.RawMessage
	if v, ok := raw["_claim_names"]; ok && json.Unmarshal(v, &names) == nil {
		_, ok := names[groups]
		return ok
	}
	return false
}

// subject returns the session subject: "<tid>/<oid>" for Entra, never an
// e-mail; "<issuer id>/<user id>" otherwise.
func (c *idClaims) subject(mode string) (string, error) {
	if mode == ModeEntra {
		if c.TenantID == "" || c.ObjectID == "" {
			return "", fmt.Errorf("%w: token lacks tid or oid", ErrIDToken)
		}
		if strings.Contains(c.TenantID, "/") || strings.Contains(c.ObjectID, "/") {
			return "", fmt.Errorf("%w: malformed tid or oid", ErrIDToken)
		}
		return c.TenantID + "/" + c.ObjectID, nil
	}
	if c.ObjectID == "" {
		return "", fmt.Errorf("%w: token lacks the user id claim", ErrIDToken)
	}
	return PrincipalID(c.Issuer, c.ObjectID), nil
}

// PrincipalID returns the user id that policies name (catalogue users:,
// meshd revoke user --user) for a user of a generic OpenID Connect
// provider ("oidc" mode): "<issuer id>/<user>", where issuer is the
// provider's iss exactly as in its tokens (trailing slash and all), user is
// the value of the user claim (POSTERN_OIDC_CLAIM_USER, default sub) and
// the issuer id is the first 9 bytes of SHA-256(issuer), base64url without
// padding (12 characters). "auth user-id" prints it; the /whoami page of the
// auth function shows it for whoever is signed in. Entra users are
// "<tid>/<oid>" instead.
func PrincipalID(issuer, user string) string { return issuerID(issuer) + "/" + user }

// issuerID is a short, stable, path-safe name for an issuer URL.
func issuerID(iss string) string {
	sum := sha256.Sum256([]byte(iss))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// checkAudience applies OpenID Connect Core §3.1.3.7 beyond go-oidc, which
// only checks that aud contains the client id: aud may name no other
// audience (the client trusts none), and an azp, when present, must be the
// client id.
func checkAudience(aud []string, azp, clientID string) error {
	for _, a := range aud {
		if a != clientID {
			return fmt.Errorf("%w: the token is also for audience %q, which this client does not trust", ErrIDToken, truncate(a, 64))
		}
	}
	if azp != "" && azp != clientID {
		return fmt.Errorf("%w: the token's authorized party (azp) %q is not this client", ErrIDToken, truncate(azp, 64))
	}
	return nil
}
