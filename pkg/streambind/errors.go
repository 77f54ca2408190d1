package streambind

import "errors"

var (
	// ErrFrameTooBig means a frame's length exceeded the packet limit; the
	// stream that sent it is cut off.
	ErrFrameTooBig = errors.New("streambind: frame larger than the packet limit")
	// ErrBadPacket means a frame did not hold a WireGuard message; the
	// stream that sent it is cut off.
	ErrBadPacket = errors.New("streambind: frame is not a WireGuard message")
	// ErrUpgradeRefused means the mesh node did not switch to the stream
	// protocol.
	ErrUpgradeRefused = errors.New("streambind: mesh node refused the stream")
	// errForeignEndpoint means a bind was handed an endpoint it did not make.
	errForeignEndpoint = errors.New("streambind: foreign endpoint")
)
