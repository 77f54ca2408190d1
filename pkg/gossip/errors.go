package gossip

import "errors"

var (
	// ErrInvalidConfig is returned by New for a configuration that cannot
	// be used (missing ID or region, no keys without Insecure, bad key
	// length, metadata too large).
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrInvalidArgument is returned for bad input to a method; nothing is
	// changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrMetaTooLarge is returned when the encoded metadata exceeds
	// memberlist.MetaMaxSize.
	ErrMetaTooLarge = errors.New("metadata too large")
	// ErrJoin is returned by Join when no seed could be joined.
	ErrJoin = errors.New("no seed could be joined")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("cluster closed")
)
