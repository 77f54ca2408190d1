package enroll

import "errors"

// ErrAttachRefused is what an Attacher wraps to refuse a connector whose
// credential is valid (for example an unknown or disabled connector group);
// the server answers 403 attach_refused.
var ErrAttachRefused = errors.New("attach refused")

// Stable error codes of ErrorResponse.Error.
const (
	CodeBadRequest            = "bad_request"
	CodeBadPublicKey          = "bad_public_key"
	CodeBadName               = "bad_name"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeUnsupportedMediaType  = "unsupported_media_type"
	CodeRequestTooLarge       = "request_too_large"
	CodeRateLimited           = "rate_limited"
	CodeNotFound              = "not_found"
	CodeTokenMalformed        = "token_malformed"
	CodeTokenBadAlgorithm     = "token_bad_algorithm"
	CodeTokenUnknownKey       = "token_unknown_key"
	CodeTokenBadSignature     = "token_bad_signature"
	CodeTokenWrongType        = "token_wrong_type"
	CodeTokenExpired          = "token_expired"
	CodeTokenNotYetValid      = "token_not_yet_valid"
	CodeTokenAlreadyUsed      = "token_already_used"
	CodeCredentialMalformed   = "credential_malformed"
	CodeCredentialBadAlg      = "credential_bad_algorithm"
	CodeCredentialUnknownKey  = "credential_unknown_key"
	CodeCredentialBadSig      = "credential_bad_signature"
	CodeCredentialWrongType   = "credential_wrong_type"
	CodeCredentialExpired     = "credential_expired"
	CodeCredentialNotYetValid = "credential_not_yet_valid"
	CodeTunnelAddrMismatch    = "tunnel_address_mismatch"
	CodeAttachRefused         = "attach_refused"
	CodeAttachFailed          = "attach_failed"
	CodeAttachUnavailable     = "attach_unavailable"
	CodeDetachFailed          = "detach_failed"
	CodeInternal              = "internal_error"
)
