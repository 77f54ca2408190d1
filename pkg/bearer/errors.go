package bearer

import "errors"

// Sentinel errors. Every verification error wraps exactly one of them;
// their text is fit for a WWW-Authenticate error_description and never
// contains the token.
var (
	// ErrMalformed means the token is not a compact JWS with JSON claims,
	// or a required claim is missing or of the wrong type.
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm means the token is signed with an algorithm that is not
	// accepted ("none", HMAC, or one its key does not declare).
	ErrAlgorithm = errors.New("signature algorithm not accepted")
	// ErrUnknownIssuer means the token's issuer is none the app trusts.
	ErrUnknownIssuer = errors.New("issuer not trusted by this application")
	// ErrWrongTenant means an Entra token of a tenant the app does not
	// accept.
	ErrWrongTenant = errors.New("tenant not accepted by this application")
	// ErrWrongVersion means an Entra token whose version the app does not
	// accept, or whose version, issuer and client claim disagree.
	ErrWrongVersion = errors.New("token version not accepted")
	// ErrUnknownKey means the token's kid is not in the issuer's key set
	// (or it has none).
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrBadSignature means the signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrWrongAudience means the token is not for this application.
	ErrWrongAudience = errors.New("token not issued for this application")
	// ErrExpired means the token's exp is past, beyond the skew.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid means the token's nbf or iat is in the future, beyond
	// the skew.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrKeysUnavailable means the issuer's keys could not be fetched.
	ErrKeysUnavailable = errors.New("the issuer's signing keys are unavailable")
	// ErrNotAccepted means the application accepts no bearer tokens.
	ErrNotAccepted = errors.New("this application accepts no bearer tokens")
)
