package devidp

import "errors"

var (
	// ErrBadConfig reports an invalid provider configuration.
	ErrBadConfig = errors.New("devidp: bad config")
	// ErrUnknownClient reports a client id that is not registered.
	ErrUnknownClient = errors.New("devidp: unknown client")
	// ErrUnknownRequest reports an authorization request or code that does
	// not exist, was used already or expired.
	ErrUnknownRequest = errors.New("devidp: unknown or expired authorization request")
	// ErrUnknownUser reports a user that is not configured.
	ErrUnknownUser = errors.New("devidp: unknown user")
	// ErrBadToken reports an access token that the provider did not issue,
	// that expired or that lacks the needed scope.
	ErrBadToken = errors.New("devidp: invalid access token")
	// ErrClosed reports use of a closed provider.
	ErrClosed = errors.New("devidp: closed")

	// errExpired marks an ErrBadToken for an expired token (Graph words
	// that case differently).
	errExpired = errors.New("expired")
)
