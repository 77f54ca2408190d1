package enroll

import (
	"errors"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/wgkey"
)

// apiErr is a refusal on its way to the client: the one place where errors
// become HTTP statuses.
type apiErr struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration
	nodeKey    *wgkey.Public // sent with proof_required
	expected   bool          // a step of the protocol, not a failure: logged at info
	cause      error         // logged, never sent; holds no secret
}

func newAPIErr(status int, code, msg string, cause error) *apiErr {
	return &apiErr{status: status, code: code, msg: msg, cause: cause}
}

// verifyFailure names one way that a token or credential fails to verify.
type verifyFailure struct {
	sentinel            error
	tokenCode, credCode string
	tokenMsg, credMsg   string
}

var verifyFailures = []verifyFailure{
	{authority.ErrExpired, CodeTokenExpired, CodeCredentialExpired,
		`this enrolment token has expired; mint a new one with "meshd token create"`,
		"this connector credential has expired; enrol the connector again with a new token"},
	{authority.ErrNotYetValid, CodeTokenNotYetValid, CodeCredentialNotYetValid,
		"this enrolment token is not valid yet; check the clocks of the mesh node and the admin host",
		"this connector credential is not valid yet; check the clocks of the mesh node and the connector host"},
	{authority.ErrWrongType, CodeTokenWrongType, CodeCredentialWrongType,
		"this is not an enrolment token (a connector credential perhaps); use a token from \"meshd token create\"",
		"this is not a connector credential (an enrolment token perhaps); enrol first and present the credential you received"},
	{authority.ErrBadAlgorithm, CodeTokenBadAlgorithm, CodeCredentialBadAlg,
		"this enrolment token is not signed with an accepted algorithm",
		"this connector credential is not signed with an accepted algorithm"},
	{authority.ErrUnknownKey, CodeTokenUnknownKey, CodeCredentialUnknownKey,
		"this enrolment token was signed by a key this mesh does not know; was it minted for another mesh?",
		"this connector credential was signed by a key this mesh does not know; enrol the connector again"},
	{authority.ErrBadSignature, CodeTokenBadSignature, CodeCredentialBadSig,
		"this enrolment token's signature does not verify; it was altered or signed by another key",
		"this connector credential's signature does not verify; it was altered or signed by another key"},
}

// tokenError maps an authority verification error for an enrolment token.
func tokenError(err error) *apiErr { return verifyError(err, true) }

// credentialError maps an authority verification error for a credential.
func credentialError(err error) *apiErr { return verifyError(err, false) }

func verifyError(err error, token bool) *apiErr {
	for _, f := range verifyFailures {
		if errors.Is(err, f.sentinel) {
			if token {
				return newAPIErr(http.StatusUnauthorized, f.tokenCode, f.tokenMsg, err)
			}
			return newAPIErr(http.StatusUnauthorized, f.credCode, f.credMsg, err)
		}
	}
	if token {
		return newAPIErr(http.StatusUnauthorized, CodeTokenMalformed,
			"this is not a well-formed enrolment token; copy the whole token from \"meshd token create\"", err)
	}
	return newAPIErr(http.StatusUnauthorized, CodeCredentialMalformed,
		"this is not a well-formed connector credential", err)
}
