package benchrun

import "errors"

var (
	// ErrUnknownScenario is returned for a scenario name that is not built in.
	ErrUnknownScenario = errors.New("unknown scenario")
	// ErrStatus is returned by an Op for a response whose status is not 2xx.
	ErrStatus = errors.New("non-2xx status")
	// ErrShortBody is returned by an Op for a response body shorter or longer
	// than requested.
	ErrShortBody = errors.New("body length differs from the one requested")
	// ErrProtocol is returned by an Op for a response over an HTTP version
	// other than HTTP/1.x, which would break "one connection per worker".
	ErrProtocol = errors.New("response not over HTTP/1.x")
)
