package winsvc

import "errors"

var (
	// ErrUnsupported is returned by Install and Uninstall on systems other
	// than Windows.
	ErrUnsupported = errors.New("windows services are only supported on Windows (use the systemd unit from the .deb or .rpm package)")
	// ErrExists is returned by Install when a service of that name is
	// already installed.
	ErrExists = errors.New("service already installed")
	// ErrNotInstalled is returned by Uninstall when no service of that
	// name is installed.
	ErrNotInstalled = errors.New("service not installed")
	// ErrNoName is returned by Install, Uninstall and Run for an empty
	// service name.
	ErrNoName = errors.New("no service name")
)
