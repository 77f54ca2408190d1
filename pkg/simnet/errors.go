package simnet

import "errors"

// ErrInvalidMatrix is wrapped by every error ParseMatrix and LoadMatrix
// return for a file that is not a valid RTT matrix.
var ErrInvalidMatrix = errors.New("invalid matrix")

// ErrUnknownRegion is returned by Network.Register for a region the matrix
// does not name.
var ErrUnknownRegion = errors.New("unknown region")

// ErrPartitioned is wrapped by dials and connection writes that a partition
// or an isolation cuts off.
var ErrPartitioned = errors.New("simulated network partition")
