package authority

import (
	"errors"

	"github.com/postern/postern/pkg/nodecred"
)

// Sentinel errors returned (wrapped with context) by verification. None of
// them, nor any error this package returns, contains the token itself.
var (
	// ErrMalformed means the input is not a well-formed compact JWS with the
	// claims this package expects (wrong shape, bad encoding, missing
	// claims, unsupported critical headers, over the size cap).
	ErrMalformed = nodecred.ErrMalformed
	// ErrBadAlgorithm means the token is not signed with EdDSA (for example
	// alg "none", HS256 or RS256).
	ErrBadAlgorithm = errors.New("token algorithm not accepted")
	// ErrUnknownKey means the token's kid names no key this authority
	// verifies with.
	ErrUnknownKey = nodecred.ErrUnknownKey
	// ErrBadSignature means the signature does not verify: the token was
	// tampered with or signed by another key.
	ErrBadSignature = nodecred.ErrBadSignature
	// ErrWrongType means the token is of another kind (typ, aud or iss do
	// not match): a credential presented as an enrolment token, or the
	// reverse.
	ErrWrongType = errors.New("wrong kind of token")
	// ErrExpired means the token's exp is past, beyond the clock skew.
	ErrExpired = nodecred.ErrExpired
	// ErrNotYetValid means the token's nbf or iat is in the future, beyond
	// the clock skew.
	ErrNotYetValid = nodecred.ErrNotYetValid
	// ErrInvalidArgument means a mint or issue call got an impossible value
	// (empty or ill-formed group or id, zero key, ttl out of range).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrKeyFile means a key file could not be used (too open, unparseable,
	// wrong key type).
	ErrKeyFile = errors.New("unusable key file")
)
