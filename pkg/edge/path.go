package edge

import (
	"context"
	"net/http"
)

// Path is one way to a connector of an app's group that a Router picks
// for an attempt of a request: a connector attached to this node, or a
// relay through another mesh node that sends the request on to one of its
// own (*pool.Connector and *pool.Relay). Paths are compared with ==, so
// a Router must return the same value for the same path instance. The
// methods must be safe for concurrent use; all but Send return at once.
type Path interface {
	// TryAcquire counts an attempt on the path unless it takes no new
	// requests now (draining, lost), and reports whether it did; every
	// true is matched by one Release, once the attempt's answer is read or
	// the attempt failed.
	TryAcquire() bool
	Release()
	// Send sends the attempt through the tunnel to the path's end, after
	// setting req.URL.Host to its address: req.URL must be the caller's
	// own copy. It behaves as http.RoundTripper.RoundTrip otherwise.
	Send(req *http.Request) (*http.Response, error)
	// Lost returns a context that ends when the path is declared dead or
	// replaced: attempts on it are abandoned.
	Lost() context.Context
	// Suspect returns a context that ends when the path becomes suspect
	// (a probe went unanswered for longer than its round trip should
	// take); an attempt that may be sent again then is, elsewhere.
	Suspect() context.Context
	// String names the path in the access log's connector key.
	String() string
}

// Router chooses the path of each attempt of a request. A lone mesh node's
// Router knows only its own connectors; a mesh node in a cluster weighs
// them against relays through the other nodes.
type Router interface {
	// Pick returns the path for the next attempt of a request to group,
	// skipping those in exclude; nil when there is none. It must be safe
	// for concurrent use and must not block.
	Pick(group string, exclude []Path) Path
	// MarkDead reports that a connection to p through the tunnel could not
	// be made.
	MarkDead(p Path, reason string)
}

// ConnectorPath is a Path whose end is one connector instance, not a mesh
// node that relays: the identity blocks that instance says it holds are
// sent to it by reference (tunnelhttp.HeaderIdentity). Its Lost context
// must end when the instance is replaced (a connector that restarts
// attaches again), so that what the old one held is forgotten.
type ConnectorPath interface {
	Path
	// EndsAtConnector marks the path; it does nothing.
	EndsAtConnector()
}
