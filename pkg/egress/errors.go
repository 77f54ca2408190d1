package egress

import "errors"

// ErrNotAllowed is returned when the allow-list refuses a destination.
var ErrNotAllowed = errors.New("destination not in the connector's allow-list")
