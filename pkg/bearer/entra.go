package bearer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/session"
)

// Entra token versions as the ver claim carries them.
const (
	entraV1 = "1.0"
	entraV2 = "2.0"
)

// entra verifies an Entra ID access token of an app's API. The version is
// handled deliberately: ver, the issuer's form and the client claim must
// all agree (v1: https://sts.windows.net/<tid>/ and appid; v2:
// <authority>/<tid>/v2.0 and azp), and the app must accept that version.
// The tenant must be accepted before any key is fetched.
func (v *Verifier) entra(ctx context.Context, jws *jose.JSONWebSignature, c claims, e catalog.Entra, eb *catalog.EntraBearer) (*session.Identity, int64, error) {
	iss, _ := c.str("iss")
	ver, err := c.str("ver")
	if err != nil {
		return nil, 0, err
	}
	tid, err := c.str("tid")
	if err != nil {
		return nil, 0, err
	}
	if tid == "" || strings.ContainsAny(tid, "/?#") {
		return nil, 0, fmt.Errorf("%w: tid is required", ErrMalformed)
	}
	if !slices.Contains(eb.Tenants, tid) {
		return nil, 0, ErrWrongTenant
	}
	if err := checkVersion(ver, iss, tid, e, eb); err != nil {
		return nil, 0, err
	}
	ks := v.keySetFor("entra:"+tid, e.V2Issuer(tid), "", "")
	if err := v.checkSignature(ctx, jws, ks); err != nil {
		return nil, 0, err
	}
	aud, err := audiences(c)
	if err != nil {
		return nil, 0, err
	}
	if len(aud) != 1 || !slices.Contains(eb.Audiences, aud[0]) {
		return nil, 0, ErrWrongAudience
	}
	exp, err := v.checkTimes(c)
	if err != nil {
		return nil, 0, err
	}
	id, err := entraIdentity(c, ver, tid)
	if err != nil {
		return nil, 0, err
	}
	return id, exp, nil
}

// checkVersion checks that ver is accepted and that iss has that
// version's form for tid.
func checkVersion(ver, iss, tid string, e catalog.Entra, eb *catalog.EntraBearer) error {
	var want, other string
	switch ver {
	case entraV1:
		want, other = e.V1IssuerFor(tid), e.V2Issuer(tid)
		if !eb.V1 {
			return fmt.Errorf("%w: this application accepts v2 tokens only", ErrWrongVersion)
		}
	case entraV2:
		want, other = e.V2Issuer(tid), e.V1IssuerFor(tid)
		if !eb.V2 {
			return fmt.Errorf("%w: this application accepts v1 tokens only", ErrWrongVersion)
		}
	default:
		return fmt.Errorf("%w: ver must be 1.0 or 2.0", ErrMalformed)
	}
	switch iss {
	case want:
		return nil
	case other:
		return fmt.Errorf("%w: a v%s token with the other version's issuer", ErrWrongVersion, ver)
	}
	return ErrUnknownIssuer
}

// entraIdentity builds the identity of a verified Entra access token: a
// user's delegated token (scp), or an application's app-only token (no
// scp; idtyp "app" where present). The client claim is appid (v1) or azp
// (v2) and the other must be absent.
func entraIdentity(c claims, ver, tid string) (*session.Identity, error) {
	clientClaim, otherClaim := "azp", "appid"
	if ver == entraV1 {
		clientClaim, otherClaim = "appid", "azp"
	}
	client, err := c.str(clientClaim)
	if err != nil {
		return nil, err
	}
	if client == "" {
		return nil, fmt.Errorf("%w: a v%s token names its client in %s", ErrMalformed, ver, clientClaim)
	}
	if _, mixed := c[otherClaim]; mixed {
		return nil, fmt.Errorf("%w: a v%s token carries %s", ErrWrongVersion, ver, otherClaim)
	}
	if _, ok := c["nonce"]; ok {
		return nil, fmt.Errorf("%w: an ID token is not an access token", ErrMalformed)
	}
	oid, err := c.str("oid")
	if err != nil {
		return nil, err
	}
	if oid == "" || strings.Contains(oid, "/") {
		return nil, fmt.Errorf("%w: oid is required", ErrMalformed)
	}
	scp, err := c.str("scp")
	if err != nil {
		return nil, err
	}
	idtyp, err := c.str("idtyp")
	if err != nil {
		return nil, err
	}
	id := &session.Identity{Subject: tid + "/" + oid, TenantID: tid, ObjectID: oid, ClientID: client}
	switch {
	case scp != "" && idtyp != "app":
		id.Type, id.Scopes = session.PrincipalUser, strings.Fields(scp)
	case scp == "" && idtyp != "user":
		id.Type = session.PrincipalApp
	default:
		return nil, fmt.Errorf("%w: idtyp %q contradicts scp", ErrMalformed, idtyp)
	}
	if id.Roles, err = c.list("roles"); err != nil {
		return nil, err
	}
	if id.Type == session.PrincipalUser {
		if err := userClaims(c, id); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// userClaims reads the profile, groups and authentication contexts of a
// delegated token.
func userClaims(c claims, id *session.Identity) error {
	var err error
	if id.Name, err = c.str("name"); err != nil {
		return err
	}
	if id.Username, err = c.str("preferred_username"); err != nil {
		return err
	}
	if id.Username == "" { // v1 tokens
		if id.Username, err = c.str("upn"); err != nil {
			return err
		}
	}
	if id.Groups, err = c.list("groups"); err != nil {
		return err
	}
	if id.ACRs, err = c.list("acrs"); err != nil {
		return err
	}
	if at, err := c.num("auth_time"); err == nil {
		id.AuthTime = at
	}
	return nil
}
