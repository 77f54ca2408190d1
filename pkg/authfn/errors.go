package authfn

import "errors"

// Sentinel errors. Each refusal the service answers with wraps one of them;
// [statusOf] maps them to an HTTP status in one place.
var (
	// ErrConfig reports an invalid [Config].
	ErrConfig = errors.New("invalid configuration")
	// ErrBadRequest reports a malformed or unacceptable request parameter.
	ErrBadRequest = errors.New("bad request")
	// ErrAppRequest reports a sign-in link whose signed app request is
	// missing, forged, for other auth functions or expired (pkg/appreq).
	ErrAppRequest = errors.New("app request refused")
	// ErrFlow reports a missing, tampered, expired or mismatched sign-in
	// flow (state, flow cookie).
	ErrFlow = errors.New("sign-in flow invalid")
	// ErrIDToken reports an ID token that failed verification (signature,
	// issuer, audience, expiry, nonce, tenant).
	ErrIDToken = errors.New("id token rejected")
	// ErrCodeRejected reports that the provider refused the authorization
	// code (replayed, expired or wrong PKCE verifier).
	ErrCodeRejected = errors.New("authorization code rejected")
	// ErrProvider reports that the identity provider could not be reached
	// or answered something unusable.
	ErrProvider = errors.New("identity provider unavailable")
	// ErrProviderError reports an error the provider sent back to the
	// callback (for example access_denied).
	ErrProviderError = errors.New("identity provider refused sign-in")
	// ErrForbidden reports a signed-in user the app cannot be handed to,
	// such as a group-gated app when group memberships are unavailable.
	ErrForbidden = errors.New("access denied")
	// ErrGraph reports a failed Microsoft Graph membership lookup.
	ErrGraph = errors.New("graph lookup failed")
)
