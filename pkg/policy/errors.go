package policy

import "errors"

// Sentinel errors.
var (
	// ErrBadPath means a request path cannot be normalised safely (see the
	// package documentation); the request must be refused, not matched.
	ErrBadPath = errors.New("unsafe request path")
	// ErrBadConfig means a policy configuration is invalid.
	ErrBadConfig = errors.New("invalid policy")
)
