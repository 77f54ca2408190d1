// Package loopback holds the one check that a listener or URL stays on
// the machine: the mesh node's admin listener, the connector's health
// listener and probe, and the command-line client's local listener all
// refuse anything but loopback with it. It is a pure package at the
// bottom of the import graph.
package loopback

import (
	"fmt"
	"net"
	"net/netip"
)

// IsHost reports whether host — a name or an IP literal, without port
// or brackets — is loopback: "localhost", an address in 127.0.0.0/8
// (also written IPv4-mapped, ::ffff:127.0.0.1) or ::1.
func IsHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// CheckAddr returns an error unless addr is a host:port whose host is
// loopback (see [IsHost]). An empty addr (no listener) passes. The error
// names addr, so callers prefix only what the address is for.
func CheckAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if !IsHost(host) {
		return fmt.Errorf("%q must be a loopback address (127.0.0.1, [::1] or localhost)", addr)
	}
	return nil
}
