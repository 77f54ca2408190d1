package wgnet

import "errors"

var (
	// errPacketTooBig means a packet did not fit WireGuard's buffer.
	errPacketTooBig = errors.New("wgnet: packet larger than buffer")
	// errBadSegment means a GSO segment could not be parsed or split.
	errBadSegment = errors.New("wgnet: malformed gso segment")
	// errForeignEndpoint means a bind was handed an endpoint it did not make.
	errForeignEndpoint = errors.New("wgnet: foreign endpoint")
)
