package appreq

import "errors"

// Sentinel errors of [Verifier.Verify]; none quotes the request.
var (
	// ErrMalformed means the request is not a well-formed signed app
	// request: size, shape, header, claims or a field's value.
	ErrMalformed = errors.New("malformed app request")
	// ErrCredential means the node credential it carries is not one the
	// mesh authority signed, or is expired.
	ErrCredential = errors.New("app request from an unknown mesh node")
	// ErrSignature means the signature is not the credential's node key's.
	ErrSignature = errors.New("app request signature invalid")
	// ErrAudience means the request is for other auth functions.
	ErrAudience = errors.New("app request for another auth service")
	// ErrExpired means the request is outside its validity window (expired,
	// issued in the future, or valid for longer than MaxLifetime).
	ErrExpired = errors.New("app request expired")
)
