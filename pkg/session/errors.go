package session

import "errors"

// Sentinel errors. Verification errors wrap exactly one of them; none of
// them, nor any error of this package, ever contains a token or key.
var (
	// ErrMalformed means the token is not a compact JWS signed with EdDSA
	// (this covers "alg": "none", HS256 and every other algorithm), its
	// header has no kid or a member other than alg, kid and typ (jku, jwk,
	// crit, b64, ...), or its header or claims cannot be decoded.
	ErrMalformed = errors.New("malformed token")
	// ErrBadSignature means the signature does not verify with the key
	// named by the token's kid.
	ErrBadSignature = errors.New("bad token signature")
	// ErrUnknownKey means the token's kid is one that the key set does
	// not list.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrWrongType means the token's "typ" header is not the kind expected
	// (an app token presented as a session, say).
	ErrWrongType = errors.New("wrong token type")
	// ErrWrongAudience means the token's aud is not the expected host.
	ErrWrongAudience = errors.New("wrong token audience")
	// ErrWrongIssuer means the token's iss is not the expected issuer.
	ErrWrongIssuer = errors.New("wrong token issuer")
	// ErrExpired means the token's exp is in the past, beyond the skew.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid means the token's nbf or iat is in the future, beyond
	// the skew.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrBadReturnPath means a return path is not a safe path on the same
	// host.
	ErrBadReturnPath = errors.New("unsafe return path")
	// ErrBadKeyset means a key set is malformed or holds keys this package
	// does not accept.
	ErrBadKeyset = errors.New("invalid key set")
	// ErrJWKSFetch means the remote JWKS could not be fetched or parsed.
	ErrJWKSFetch = errors.New("jwks fetch failed")
)
