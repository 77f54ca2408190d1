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
	// ErrWebSocket is returned by the websocket and tcp scenarios' Op for
	// an echo that differs from the message sent.
	ErrWebSocket = errors.New("websocket echo differs from the message sent")
	// ErrNoAuth is returned when a scenario needs a pre-authenticated app
	// and the system has none.
	ErrNoAuth = errors.New("no pre-authenticated app in this system")
	// ErrNoTCP is returned when a scenario needs a TCP app and the system
	// has none.
	ErrNoTCP = errors.New("no TCP app in this system")
	// ErrBadResults is returned by ReadResults for a file that is not a
	// results.json array.
	ErrBadResults = errors.New("not a results.json array")
)

var (
	// ErrNotRelay is returned by the relay scenario when node A's route to
	// the app is not a relay through node B.
	ErrNotRelay = errors.New("route is not a relay through node B")
	// ErrNoRegion is returned when a scenario names a user region that
	// has no mesh node.
	ErrNoRegion = errors.New("no mesh node in region")
	// ErrNotAttached is returned by the regions scenario when no connector
	// of the shared group is attached to any node.
	ErrNotAttached = errors.New("no connector of the shared group is attached")
)
