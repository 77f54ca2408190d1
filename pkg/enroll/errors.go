package enroll

import "errors"

// ErrAttachRefused is what an Attacher wraps to refuse a connector whose
// credential is valid (for example an unknown or disabled connector group);
// the server answers 403 attach_refused.
var ErrAttachRefused = errors.New("attach refused")

// ErrRedeemUnavailable is what a Redeemer wraps when the mesh cannot
// decide now whether a token is still unused; the server answers 503
// token_check_unavailable.
var ErrRedeemUnavailable = errors.New("token redemption unavailable")

// ErrBadRevocation is what a Revoker wraps for a revocation that does not
// verify; the server answers 400 revocation_invalid.
var ErrBadRevocation = errors.New("invalid revocation")

// Errors a WorkloadVerifier wraps; the server answers 401
// workload_token_invalid, 403 workload_not_allowed and 503
// workload_check_unavailable.
var (
	// ErrWorkloadToken means the workload token does not verify (issuer,
	// signature, audience, times, shape).
	ErrWorkloadToken = errors.New("workload token invalid")
	// ErrWorkloadNotAllowed means the token is valid but the group does
	// not accept it (no workload_enrollment, another issuer, another
	// subject).
	ErrWorkloadNotAllowed = errors.New("workload not allowed in this group")
	// ErrWorkloadUnavailable means the issuer's keys cannot be fetched
	// now.
	ErrWorkloadUnavailable = errors.New("workload check unavailable")
)

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
	CodeProofRequired         = "proof_required"
	CodeKeyReserved           = "key_reserved"
	CodeConnectorRevoked      = "connector_revoked"
	CodeGroupUnknown          = "group_unknown"
	CodeTokenCheckUnavailable = "token_check_unavailable"
	CodeRevocationInvalid     = "revocation_invalid"
	CodeRevokeUnavailable     = "revoke_unavailable"
	CodeWorkloadTokenInvalid  = "workload_token_invalid"
	CodeWorkloadNotAllowed    = "workload_not_allowed"
	CodeWorkloadUnavailable   = "workload_check_unavailable"
	CodeLeaveFailed           = "leave_failed"
)
