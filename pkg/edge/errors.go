package edge

import "errors"

var (
	// errNoConnector means no live connector of the app's group is attached.
	errNoConnector = errors.New("no connector online")
	// errBackendTimeout means the backend sent no response headers within
	// the app's backend timeout.
	errBackendTimeout = errors.New("backend timeout")
	// errRelayNoConnector means a relay mesh node had no connector to send
	// the request to; it never reached one.
	errRelayNoConnector = errors.New("relay node has no usable connector")
	// errPathClosed means the path picked for an attempt began draining
	// (or was lost) before the request was counted on it; nothing was sent.
	errPathClosed = errors.New("path stopped taking requests")
	// errSuspect means an attempt was abandoned because its connector
	// became suspect before answering; the request, which may be sent
	// again, went to another path.
	errSuspect = errors.New("connector suspect: request sent again elsewhere")
	// errLost means an attempt was abandoned because its path was
	// declared dead (or replaced) before it answered.
	errLost = errors.New("connector lost")
	// errNotSent wraps the last error of a request that reached no
	// connector on any attempt.
	errNotSent = errors.New("request reached no connector")
)

// connectorError is an error a connector reported in its answer.
type connectorError struct{ code string }

func (e *connectorError) Error() string { return "connector reported " + e.code }
