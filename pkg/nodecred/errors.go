package nodecred

import "errors"

// Sentinel errors of verification (pkg/authority returns the same values
// under its own names). None of them quotes the input.
var (
	// ErrMalformed means the input is not a well-formed credential (or
	// token): wrong size, magic or encoding, ill-formed fields.
	ErrMalformed = errors.New("malformed token")
	// ErrUnknownKey means the credential names no key the verifier trusts.
	ErrUnknownKey = errors.New("token signed by an unknown key")
	// ErrBadSignature means the signature does not verify.
	ErrBadSignature = errors.New("token signature invalid")
	// ErrExpired means the credential's expiry is past, beyond the skew.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid means the credential was issued in the future, beyond
	// the skew.
	ErrNotYetValid = errors.New("token not yet valid")
)
